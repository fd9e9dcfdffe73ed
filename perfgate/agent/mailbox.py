"""A deterministic mailbox: a few thousand ordinary work emails in one person's inbox, plus a handful of emails
that carry the facts the agent's questions ask about. The same seed gives the same emails, byte for byte, on any
machine and Python >= 3.10 (random.Random's choice/randrange/random are stable), so the committed questions,
trajectories and traces (fixtures/agent) stay true; `digest` proves it.

Stored in SQLite with an FTS5 index over subject and body, like the users' agent's inbox database.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

SEED = 20251128
N_EMAILS = 3000
OWNER = "jordan.reyes@northwind-energy.com"
YEAR_START = datetime(2025, 1, 2, 8, 0)

FIRST = (
    "Alex Priya Marcus Elena Tomasz Aisha Daniel Mei Carlos Fatima Oliver Ingrid Samuel Noor Lukas Grace Rafael "
    "Hannah Kenji Sofia Victor Amara Ethan Leila Nikolai Chloe Mateo Zara Henrik Yuki"
).split()
LAST = (
    "Okafor Lindqvist Moreau Chen Kowalski Haddad Brennan Tanaka Alvarez Rahman Fischer Novak Adeyemi Castillo "
    "Sato Whitfield Petrov Quinn Duarte Bauer"
).split()
COMPANIES = (
    ("northwind-energy.com", "Northwind Energy"),
    ("halcyon-labs.io", "Halcyon Labs"),
    ("brightpath-logistics.com", "Brightpath Logistics"),
    ("meridian-legal.com", "Meridian Legal"),
    ("copperleaf-finance.com", "Copperleaf Finance"),
)
PROJECTS = ("Helios", "Tern", "Basalt", "Juniper", "Orca", "Lumen", "Quarry", "Sable")
SITES = ("Rotterdam", "Aberdeen", "Houston", "Stavanger", "Perth", "Calgary")
ROOMS = ("Fjord", "Delta", "Summit", "Harbor", "Atlas")

# Ordinary mail: (subject, opening, [sentences to draw the body from]). {p} project, {s} site, {r} room, {d} a day,
# {n} a number, {m} a month.
TOPICS = (
    (
        "{p} weekly status",
        "Here is this week's status for {p}.",
        [
            "The {s} team closed {n} tickets and the backlog is down to the items we agreed to defer.",
            "Integration testing slipped by two days because the vendor sandbox was down on {d}.",
            "We still need a decision on the data retention policy before the next milestone.",
            "Budget burn is on plan; the forecast for {m} has not changed since the last review.",
            "The risk register has one new entry about the permit timeline at {s}.",
            "Please flag anything blocking before Thursday so I can include it in the steering update.",
        ],
    ),
    (
        "Meeting moved: {p} sync",
        "Quick note that the {p} sync is moving.",
        [
            "We will meet in the {r} room instead of the usual one, same dial-in.",
            "The new slot is {d} at {n}:00; the calendar invite has been updated.",
            "If you cannot make it, send your updates by email and I will read them out.",
            "The agenda is the open actions from last time and the {s} site visit.",
        ],
    ),
    (
        "Re: {s} site visit",
        "Thanks for organising the visit to {s}.",
        [
            "Safety induction is mandatory for everyone and takes about {n} minutes.",
            "Bring your own boots; hard hats and glasses are provided at the gate.",
            "The site manager asked us to keep the group under eight people.",
            "Lunch is at the canteen; let me know about dietary requirements by {d}.",
            "Parking is limited, so please share rides from the hotel where you can.",
        ],
    ),
    (
        "Expense report for {m}",
        "Your expense report for {m} has been received.",
        [
            "Two receipts are missing; please upload them in the portal within {n} days.",
            "Mileage claims above the monthly cap need your manager's approval.",
            "Reimbursement runs on the last working day of the month.",
            "Contact the finance desk if any amount looks wrong.",
        ],
    ),
    (
        "{p}: draft design review",
        "Attached is the draft design for {p} ahead of the review.",
        [
            "The main change since the last version is the move to a single ingestion service.",
            "Section {n} covers the failure modes we discussed with the {s} operators.",
            "I would like written comments by {d}, even if they are short.",
            "Open questions are marked in yellow; most of them are about capacity planning.",
            "We are not proposing any change to the reporting interface in this round.",
        ],
    ),
    (
        "Training reminder",
        "This is a reminder about the mandatory training for {m}.",
        [
            "The module takes about {n} minutes and must be completed by {d}.",
            "You can pause and resume; progress is saved automatically.",
            "Certificates appear in your profile within a day of completion.",
        ],
    ),
    (
        "Re: {p} vendor shortlist",
        "Following up on the vendor shortlist for {p}.",
        [
            "Three vendors remain after the technical screen, and all of them can deliver to {s}.",
            "Reference calls are booked for {d}; I have shared the question list.",
            "Pricing from the second vendor is about {n} percent above the others but includes support.",
            "Legal has asked for the standard data processing terms in every contract.",
        ],
    ),
    (
        "Out of office {d}",
        "I will be out of the office on {d}.",
        [
            "For anything urgent on {p}, please contact the team channel.",
            "I will have limited access to email and will reply when I am back.",
            "The {s} handover notes are in the shared folder.",
        ],
    ),
    (
        "{s} maintenance window",
        "Planned maintenance at {s} is scheduled for {m}.",
        [
            "Expect reduced output for about {n} hours during the switchover.",
            "The control room will confirm the exact start time on {d}.",
            "No action is needed from the project teams unless a test is planned for that window.",
            "The last window ran over by forty minutes; we have added a buffer this time.",
        ],
    ),
    (
        "Quarterly numbers - {p}",
        "Sharing the quarterly numbers for {p} before they go to the board.",
        [
            "Revenue is up {n} percent on the same quarter last year.",
            "Operating costs rose mainly because of the {s} contractor rates.",
            "The board pack is due on {d}; please send corrections before then.",
            "I have kept the format the same as last quarter so the comparison is easy.",
        ],
    ),
)

# Emails that carry the facts the questions ask about (see perfgate.agent.questions). Each is placed once.
FACTS = (
    {
        "key": "flight",
        "sender": ("travel@brightpath-logistics.com", "Brightpath Travel Desk"),
        "date": "2025-03-11T09:42",
        "subject": "Booking confirmed: Houston to Aberdeen, 24 March",
        "body": "Hello Jordan,\n\nYour trip is booked. Flight BA 196 departs Houston on 24 March at 18:05 and "
        "arrives in Aberdeen via London on 25 March at 13:20. Your booking reference is QX7T2M. Seat 31A is "
        "reserved and one checked bag is included.\n\nHotel: Marcliffe House, three nights.\n\nSafe travels,\n"
        "Brightpath Travel Desk",
    },
    {
        "key": "invoice",
        "sender": ("accounts@halcyon-labs.io", "Halcyon Labs Accounts"),
        "date": "2025-05-06T14:10",
        "subject": "Invoice HL-2025-0417 for the Juniper pilot",
        "body": "Dear Jordan,\n\nPlease find our invoice HL-2025-0417 for the Juniper pilot, covering April. "
        "The total due is USD 48,250.00, payable within 30 days to the account on file. The amount includes "
        "the sensor calibration work at Stavanger.\n\nKind regards,\nHalcyon Labs Accounts",
    },
    {
        "key": "offsite",
        "sender": ("mei.tanaka@northwind-energy.com", "Mei Tanaka"),
        "date": "2025-06-02T11:25",
        "subject": "Team offsite venue and dates",
        "body": "Hi all,\n\nThe summer offsite is confirmed for 17-18 July at the Linthwaite Hall conference "
        "centre. The coach leaves the Houston office at 07:30 on the 17th. Please tell me about dietary needs "
        "by 20 June.\n\nMei",
    },
    {
        "key": "migration",
        "sender": ("lukas.fischer@halcyon-labs.io", "Lukas Fischer"),
        "date": "2025-08-19T16:02",
        "subject": "Orca database migration date",
        "body": "Jordan,\n\nWe have agreed with your operations team to migrate the Orca database on Saturday "
        "13 September, starting at 22:00 UTC. The expected downtime is four hours. Rollback is possible until "
        "06:00 UTC on Sunday.\n\nLukas Fischer\nHalcyon Labs",
    },
    {
        "key": "budget",
        "sender": ("grace.whitfield@copperleaf-finance.com", "Grace Whitfield"),
        "date": "2025-02-20T10:15",
        "subject": "Helios phase 2 budget approved",
        "body": "Hi Jordan,\n\nThe investment committee approved the Helios phase 2 budget this morning: "
        "EUR 1.2 million, released in two tranches. The first tranche of EUR 700,000 is available from 1 "
        "March. Conditions are in the attached memo.\n\nGrace",
    },
    {
        "key": "contract",
        "sender": ("fatima.haddad@meridian-legal.com", "Fatima Haddad"),
        "date": "2025-04-08T13:37",
        "subject": "Basalt supply contract - signed copy",
        "body": "Dear Jordan,\n\nAttached is the countersigned Basalt supply contract. It runs for three "
        "years from 1 May 2025, and either party may terminate with 90 days' written notice. The governing "
        "law is that of the Netherlands.\n\nBest regards,\nFatima Haddad\nMeridian Legal",
    },
    {
        "key": "incident",
        "sender": ("henrik.novak@northwind-energy.com", "Henrik Novak"),
        "date": "2025-10-03T07:58",
        "subject": "Incident report: Stavanger pump station",
        "body": "Jordan,\n\nSummary of last night's incident: pump P-14 at the Stavanger station tripped at "
        "02:41 after a bearing temperature alarm. Nobody was hurt. Output was restored at 05:10 on the standby "
        "pump. Root cause analysis is due on 10 October.\n\nHenrik",
    },
    {
        "key": "hire",
        "sender": ("elena.moreau@northwind-energy.com", "Elena Moreau"),
        "date": "2025-09-09T15:20",
        "subject": "New data engineer starting on Tern",
        "body": "Hi Jordan,\n\nGood news: Kenji Sato accepted our offer and joins the Tern team as a data "
        "engineer on 6 October. He will sit with the Rotterdam group for the first month. Could you set up his "
        "repository access?\n\nElena",
    },
    {
        "key": "audit",
        "sender": ("samuel.bauer@copperleaf-finance.com", "Samuel Bauer"),
        "date": "2025-11-04T09:05",
        "subject": "Audit fieldwork schedule",
        "body": "Dear Jordan,\n\nThe external auditors will be on site in Calgary from 24 to 28 November. "
        "They have asked for the fixed asset register and the Lumen project cost reports by 14 November.\n\n"
        "Regards,\nSamuel Bauer",
    },
    {
        "key": "price",
        "sender": ("carlos.alvarez@brightpath-logistics.com", "Carlos Alvarez"),
        "date": "2025-07-22T12:48",
        "subject": "Revised freight rates from August",
        "body": "Hello Jordan,\n\nFrom 1 August our container rate Rotterdam to Houston rises to USD 3,140 per "
        "forty-foot container, up from USD 2,875. Rates for Perth are unchanged. The new rate card is "
        "attached.\n\nCarlos Alvarez\nBrightpath Logistics",
    },
    {
        "key": "offsite-change",
        "sender": ("mei.tanaka@northwind-energy.com", "Mei Tanaka"),
        "date": "2025-06-27T17:03",
        "subject": "Offsite update: coach time changed",
        "body": "Hi all,\n\nSmall change for the offsite: the coach now leaves the Houston office at 08:15 on "
        "17 July, not 07:30, because of roadworks at the venue. Everything else stays the same.\n\nMei",
    },
    {
        "key": "license",
        "sender": ("priya.lindqvist@halcyon-labs.io", "Priya Lindqvist"),
        "date": "2025-12-01T10:30",
        "subject": "Sable analytics licence renewal",
        "body": "Hi Jordan,\n\nThe Sable analytics licence expires on 31 December. Renewal for 25 seats "
        "costs USD 18,600 for the year. If you confirm by 15 December we can hold last year's price.\n\n"
        "Priya Lindqvist",
    },
)


@dataclass(frozen=True)
class Email:
    id: str
    date: str  # ISO 8601, minutes, no zone
    sender: str  # "Name <address>"
    recipients: str  # comma-separated "Name <address>"
    cc: str
    subject: str
    body: str


def _people(rng: random.Random) -> list[tuple[str, str]]:
    people = []
    for i, first in enumerate(FIRST):
        last = LAST[(i * 7) % len(LAST)]
        domain = COMPANIES[i % len(COMPANIES)][0]
        people.append((f"{first.lower()}.{last.lower()}@{domain}", f"{first} {last}"))
    rng.shuffle(people)
    return people


def _slots(rng: random.Random, when: datetime) -> dict[str, object]:
    """One email's fillers, drawn once so that its subject and body agree (one project, one site)."""
    day = when + timedelta(days=rng.randrange(2, 20))
    return {
        "p": rng.choice(PROJECTS),
        "s": rng.choice(SITES),
        "r": rng.choice(ROOMS),
        "d": f"{day:%A} {day.day} {day:%B}",
        "n": rng.randrange(3, 40),
        "m": f"{day:%B}",
    }


def _sent_at(rng: random.Random) -> datetime:
    """A working day between 2 January and mid-December 2025, office hours."""
    while True:
        day = YEAR_START + timedelta(days=rng.randrange(345))
        if day.weekday() < 5:
            return day + timedelta(minutes=rng.randrange(10 * 60))


def _ordinary(i: int, rng: random.Random, people: list[tuple[str, str]]) -> Email:
    subject_t, opening_t, pool = rng.choice(TOPICS)
    address, name = rng.choice(people)
    others = rng.sample(people, rng.randrange(0, 3))
    sentences = rng.sample(pool, rng.randrange(2, len(pool) + 1))
    when = _sent_at(rng)
    slots = _slots(rng, when)
    outgoing = rng.random() < 0.25
    greeting = (
        "Hi all," if others or rng.random() < 0.3 else ("Hi Jordan," if not outgoing else f"Hi {name.split()[0]},")
    )
    signer = "Jordan" if outgoing else name.split()[0]
    body = "\n\n".join(
        [greeting, opening_t.format(**slots) + " " + sentences[0].format(**slots)]
        + [" ".join(s.format(**slots) for s in sentences[1:])]
        + [f"{'Thanks' if rng.random() < 0.5 else 'Best'},\n{signer}"]
    )
    owner = f"Jordan Reyes <{OWNER}>"
    sender, recipients = (owner, f"{name} <{address}>") if outgoing else (f"{name} <{address}>", owner)
    return Email(
        id=f"m{i:05d}",
        date=when.strftime("%Y-%m-%dT%H:%M"),
        sender=sender,
        recipients=recipients,
        cc=", ".join(f"{n} <{a}>" for a, n in others if a != address),
        subject=subject_t.format(**slots),
        body=body,
    )


def generate(seed: int = SEED, n: int = N_EMAILS) -> list[Email]:
    """The mailbox: n - len(FACTS) ordinary emails and every fact email, sorted by date, ids m00001... by date."""
    rng = random.Random(seed)
    people = _people(rng)
    emails = [_ordinary(i, rng, people) for i in range(n - len(FACTS))]
    for fact in FACTS:
        address, name = fact["sender"]
        emails.append(
            Email("", fact["date"], f"{name} <{address}>", f"Jordan Reyes <{OWNER}>", "", fact["subject"], fact["body"])
        )
    emails.sort(key=lambda e: (e.date, e.subject, e.body))
    return [replace(e, id=f"m{i + 1:05d}") for i, e in enumerate(emails)]


def digest(emails: list[Email]) -> str:
    text = json.dumps([asdict(e) for e in emails], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


SCHEMA = """
CREATE TABLE emails (id TEXT PRIMARY KEY, date TEXT NOT NULL, sender TEXT NOT NULL, recipients TEXT NOT NULL,
                     cc TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL);
CREATE VIRTUAL TABLE emails_fts USING fts5(subject, body, content='emails', content_rowid='rowid',
                                           tokenize='porter unicode61');
"""


def write_sqlite(emails: list[Email], path: Path) -> Path:
    """Write the mailbox to a new SQLite file (atomically: a reader never sees half a mailbox)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:
        db.executescript(SCHEMA)
        db.executemany("INSERT INTO emails VALUES (?, ?, ?, ?, ?, ?, ?)", [tuple(asdict(e).values()) for e in emails])
        db.execute("INSERT INTO emails_fts(emails_fts) VALUES ('rebuild')")
    db.close()
    tmp.replace(path)
    return path


def ensure_sqlite(cache: Path, seed: int = SEED, n: int = N_EMAILS) -> tuple[Path, str]:
    """(path, digest) of the mailbox database, built once per seed and size into the cache."""
    emails = generate(seed, n)
    fingerprint = digest(emails)
    path = cache / "agent" / f"mailbox-{fingerprint[:16]}.sqlite"
    if not path.exists():
        write_sqlite(emails, path)
    return path, fingerprint
