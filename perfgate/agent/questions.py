"""The agent's questions: what a user asks, the answer the mailbox supports, and the trajectory a good agent takes
(its tool calls in order). Arguments name an email as "@<fact key>" (the fact email of mailbox.FACTS); the
builder resolves them against the mailbox and checks that the agent could have seen every id it reads in an
earlier search result.

The first ten are the default set (the users run TEST_SET_SIZE=10). Trajectories take 3 to 5 turns, as the
users' agent does on such questions: search, read, maybe search again or read another, answer."""

from __future__ import annotations

SYSTEM_PROMPT = (
    "You are an email search agent. You answer the user's question by searching their mailbox with the tools you "
    "are given. The user's email address is jordan.reyes@northwind-energy.com and today's date is 2025-12-15.\n\n"
    "Search with a few precise keywords, and narrow by sender or dates when the question allows it. Read the emails "
    "that look relevant before you answer; do not guess from snippets. When you have the answer, call "
    "return_final_answer with a short answer and the ids of the emails it rests on. If the mailbox does not hold "
    "the answer, say so in return_final_answer. You may take at most 10 turns."
)


def _search(**args) -> tuple[str, dict]:
    return ("search_emails", args)


def _read(ref: str) -> tuple[str, dict]:
    return ("read_email", {"id": ref})


def _answer(answer: str, *sources: str) -> tuple[str, dict]:
    return ("return_final_answer", {"answer": answer, "sources": list(sources)})


QUESTIONS: tuple[dict, ...] = (
    {
        "id": "q01",
        "question": "What is the booking reference for my flight to Aberdeen in March?",
        "answer": "QX7T2M",
        "steps": [
            _search(keywords=["flight", "Aberdeen"], date_from="2025-03-01", date_to="2025-03-31"),
            _read("@flight"),
            _answer("The booking reference is QX7T2M (flight BA 196 on 24 March).", "@flight"),
        ],
    },
    {
        "id": "q02",
        "question": "How much does Halcyon Labs' invoice for the Juniper pilot come to?",
        "answer": "USD 48,250.00",
        "steps": [
            _search(keywords=["invoice", "Juniper"], sender="halcyon"),
            _read("@invoice"),
            _answer("Invoice HL-2025-0417 comes to USD 48,250.00, payable within 30 days.", "@invoice"),
        ],
    },
    {
        "id": "q03",
        "question": "What time does the coach leave for the summer offsite?",
        "answer": "08:15",
        "steps": [
            _search(keywords=["offsite", "coach"]),
            _read("@offsite"),
            _read("@offsite-change"),
            _answer(
                "The coach leaves the Houston office at 08:15 on 17 July; it was moved from 07:30 because of "
                "roadworks at the venue.",
                "@offsite-change",
                "@offsite",
            ),
        ],
    },
    {
        "id": "q04",
        "question": "When is the Orca database migration, and how long will the database be down?",
        "answer": "13 September, 22:00 UTC, four hours",
        "steps": [
            _search(keywords=["Orca", "migration"]),
            _read("@migration"),
            _answer(
                "The Orca database migrates on Saturday 13 September from 22:00 UTC, with about four hours of "
                "downtime; rollback is possible until 06:00 UTC on Sunday.",
                "@migration",
            ),
        ],
    },
    {
        "id": "q05",
        "question": "How much did the committee approve for Helios phase 2, and when is the first money available?",
        "answer": "EUR 1.2 million, EUR 700,000, 1 March",
        "steps": [
            _search(keywords=["Helios", "funding"]),
            _search(keywords=["Helios", "budget"]),
            _read("@budget"),
            _answer(
                "EUR 1.2 million was approved for Helios phase 2, in two tranches; the first, EUR 700,000, is "
                "available from 1 March.",
                "@budget",
            ),
        ],
    },
    {
        "id": "q06",
        "question": "What notice do we have to give to end the Basalt supply contract?",
        "answer": "90 days' written notice",
        "steps": [
            _search(keywords=["Basalt", "contract"], sender="meridian"),
            _read("@contract"),
            _answer(
                "Either party may terminate with 90 days' written notice; the contract runs three years from "
                "1 May 2025.",
                "@contract",
            ),
        ],
    },
    {
        "id": "q07",
        "question": "What tripped at the Stavanger pump station, and at what time?",
        "answer": "pump P-14, at 02:41",
        "steps": [
            _search(keywords=["pump", "failure"], sender="novak"),
            _search(keywords=["pump", "Stavanger"]),
            _read("@incident"),
            _answer(
                "Pump P-14 tripped at 02:41 after a bearing temperature alarm; output was restored at 05:10 on "
                "the standby pump.",
                "@incident",
            ),
        ],
    },
    {
        "id": "q08",
        "question": "Who is joining the Tern team as a data engineer, and when do they start?",
        "answer": "Kenji Sato, 6 October",
        "steps": [
            _search(keywords=["Tern", "engineer"]),
            _read("@hire"),
            _answer("Kenji Sato joins the Tern team as a data engineer on 6 October.", "@hire"),
        ],
    },
    {
        "id": "q09",
        "question": "What do the external auditors need from us, and by when?",
        "answer": "fixed asset register, Lumen project cost reports, 14 November",
        "steps": [
            _search(keywords=["auditors"]),
            _read("@audit"),
            _answer(
                "They want the fixed asset register and the Lumen project cost reports by 14 November; "
                "fieldwork is in Calgary from 24 to 28 November.",
                "@audit",
            ),
        ],
    },
    {
        "id": "q10",
        "question": "From August, what does Brightpath charge for a forty-foot container from Rotterdam to Houston?",
        "answer": "USD 3,140",
        "steps": [
            _search(keywords=["container", "rate"], sender="brightpath", date_from="2025-06-01"),
            _read("@price"),
            _answer("USD 3,140 per forty-foot container from 1 August, up from USD 2,875.", "@price"),
        ],
    },
    {
        "id": "q11",
        "question": "How much will renewing the Sable analytics licence cost, and by when must I confirm?",
        "answer": "USD 18,600, 15 December",
        "steps": [
            _search(keywords=["Sable", "licence"]),
            _read("@license"),
            _answer(
                "USD 18,600 for 25 seats for the year, at last year's price if confirmed by 15 December.", "@license"
            ),
        ],
    },
    {
        "id": "q12",
        "question": "Which is larger: the Juniper pilot invoice or the Sable licence renewal?",
        "answer": "Juniper pilot invoice",
        "steps": [
            _search(keywords=["invoice", "Juniper"]),
            _read("@invoice"),
            _search(keywords=["Sable", "renewal"]),
            _read("@license"),
            _answer(
                "The Juniper pilot invoice (USD 48,250.00) is larger than the Sable licence renewal (USD 18,600).",
                "@invoice",
                "@license",
            ),
        ],
    },
)
