"""Timed generation against a fake model, for the cases a real one cannot be made to show."""

import pytest
import torch

from perfgate.generation import Round, ShortGeneration, generate_round


class EarlyStopper:
    """A model whose generate stops after `produce` tokens, whatever it was asked for (an EOS, say)."""

    def __init__(self, produce: int, call_criteria: bool = True) -> None:
        self.produce = produce
        self.call_criteria = call_criteria

    def generate(self, input_ids, stopping_criteria, **kwargs):
        out = input_ids
        for _ in range(self.produce):
            out = torch.cat([out, out[:, -1:]], dim=-1)
            if self.call_criteria:
                stopping_criteria[0](out, None)
        return out


def test_fewer_tokens_than_asked_fails_with_the_counts():
    with pytest.raises(ShortGeneration, match="asked for 16 new tokens, generate returned 5"):
        generate_round(EarlyStopper(5), torch.zeros(1, 4, dtype=torch.long), 16, 0, "cpu")


def test_a_generate_that_skips_its_criteria_cannot_be_timed():
    with pytest.raises(ShortGeneration, match="step clock saw 0 of 4"):
        generate_round(EarlyStopper(4, call_criteria=False), torch.zeros(1, 4, dtype=torch.long), 4, 0, "cpu")


def test_counts_and_rates_from_the_stamps():
    rnd = generate_round(EarlyStopper(10), torch.zeros(1, 4, dtype=torch.long), 10, 0, "cpu")
    assert rnd.new_tokens == 10
    assert rnd.decode_tok_per_s == pytest.approx(9 / rnd.decode_s)


def test_a_round_from_another_versions_worker_keeps_the_fields_this_one_knows():
    # an A/B run's base side may run another commit's worker: a newer one sends fields this version lacks, an older one
    # lacks some this version has (they keep their defaults)
    sent = {"ttft_s": 0.1, "decode_s": 1.0, "new_tokens": 8, "decode_tok_per_s": 7.0, "step_median_s": 0.14}
    sent |= {"wall_s": 1.1, "clock_overhead_s": 0.0, "from_a_newer_worker": 3}
    r = Round.from_dict(sent)
    assert (r.new_tokens, r.prefill_tokens, r.steps_s) == (8, 0, ())
    assert Round.from_dict(r.to_dict()) == r
