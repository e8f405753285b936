"""`eval` shows progress: lm-eval's and the trainer's own tqdm bars move factory-kit's bar."""

from __future__ import annotations

from factory_kit.evaluate import follow

LM_EVAL = [
    "2026-12-02:02:43:42 INFO     [evaluator:589] Running loglikelihood requests",
    "Running loglikelihood requests:   0%|          | 0/48 [00:00<?, ?it/s]",
    "Running loglikelihood requests:  50%|█████     | 24/48 [00:01<00:01, 19.20it/s]",
    "Tokenizing inputs: 100%|██████████| 3/3 [00:00<00:00, 77.55it/s]",
    "Running loglikelihood requests: 100%|██████████| 48/48 [00:02<00:00, 19.20it/s]",
]


class Recorder:
    def __init__(self):
        self.updates = []

    def update(self, **kwargs):
        self.updates.append(kwargs)


def test_tqdm_frames_are_read():
    assert follow.tqdm_frame(LM_EVAL[2]) == ("Running loglikelihood requests", 24, 48)
    assert follow.tqdm_frame(" 40%|████      | 2/5 [00:01<00:01,  1.9it/s]") == ("", 2, 5)
    assert follow.tqdm_frame(LM_EVAL[0]) is None
    assert follow.tqdm_frame("loss 0.5 | step 3/10") is None


def test_lm_eval_requests_become_items(monkeypatch, capsys):
    """12 items of 4 options are 48 requests: the bar counts items; other lines are echoed."""
    monkeypatch.setenv("FACTORY_KIT_PROGRESS", "1")
    bar = Recorder()
    on_line = follow.follower(bar, lambda d: d.startswith("Running ") and d.endswith(" requests"), scale=12)
    for line in LM_EVAL:
        on_line(line)
    assert bar.updates == [{"completed": 0, "total": 12}, {"completed": 6, "total": 12},
                           {"completed": 12, "total": 12}]
    shown = capsys.readouterr().out.splitlines()
    assert shown == [LM_EVAL[0], LM_EVAL[3]]  # the followed bar is not echoed again under ours


def test_without_a_terminal_every_line_is_echoed_as_before(monkeypatch, capsys):
    monkeypatch.setenv("FACTORY_KIT_PROGRESS", "0")
    on_line = follow.follower(Recorder(), lambda d: d == "")
    for line in LM_EVAL:
        on_line(line)
    assert capsys.readouterr().out.splitlines() == LM_EVAL
