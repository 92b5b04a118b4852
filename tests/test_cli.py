"""The `oudertelefoon` command's contracts, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import REPO_ROOT

KEYS = ["text", "theme", "intent", "confidence", "risk", "route", "language", "backend", "danger"]


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    var = tmp_path_factory.mktemp("clivar")
    env = {k: v for k, v in os.environ.items() if k not in {"NLU_BACKEND", "RASA_URL"}}
    env.update({"OUDERTELEFOON_VAR_DIR": str(var), "OUDERTELEFOON_ENV": "test", "LOG_LEVEL": "WARNING"})
    return env


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        check=False, capture_output=True, text=True, env=env, input=stdin, timeout=180, cwd=REPO_ROOT,
    )


def test_triage_prints_one_json_object(cli_env: dict[str, str]) -> None:
    result = run(cli_env, "triage", "ik wil niet meer wakker worden")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert list(obj) == KEYS
    assert obj["risk"] == "acute" and obj["route"] == "emergency"
    assert obj["danger"] == "suicide"
    assert obj["text"] == "ik wil niet meer wakker worden"


def test_batch_keeps_order_and_reports_bad_lines(cli_env: dict[str, str], tmp_path: Path) -> None:
    batch = tmp_path / "in.jsonl"
    batch.write_text(
        "\n".join([
            json.dumps({"text": "hoi"}),
            "{dit is geen json",
            json.dumps({"tekst": "verkeerd veld"}),
            json.dumps({"text": "I can't pay the rent this month", "id": 7}),
            "",
            json.dumps({"text": "mijn baby ademt niet"}),
        ]) + "\n",
        encoding="utf-8",
    )
    result = run(cli_env, "triage", "--batch", str(batch))
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(out) == 6
    assert out[0]["intent"] == "greet"
    assert out[1] == {"line": 2, "error": out[1]["error"]} and "JSON" in out[1]["error"]
    assert out[2]["line"] == 3 and "text" in out[2]["error"]
    assert out[3]["text"] == "I can't pay the rent this month" and out[3]["language"] == "en"
    assert out[4] == {"line": 5, "error": "empty line"}
    assert out[5]["risk"] == "acute"
    assert "3 line(s) had errors" in result.stderr


def test_batch_from_stdin(cli_env: dict[str, str]) -> None:
    result = run(cli_env, "triage", "--batch", "-", stdin='{"text": "mens"}\n')
    assert json.loads(result.stdout)["intent"] == "ask_human"


def test_nlu_test_json(cli_env: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "small.yml"
    data.write_text(
        'version: "3.1"\nnlu:\n- intent: money\n  examples: |\n    - ik heb schulden en de deurwaarder komt\n'
        "- intent: greet\n  examples: |\n    - hallo daar\n"
        "- intent: mental_health\n  metadata:\n    risk: acute\n  examples: |\n    - ik wil dood\n",
        encoding="utf-8",
    )
    result = run(cli_env, "nlu", "test", "--data", str(data), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["examples"] == 3
    assert set(report["per_intent"]) == {"money", "greet", "mental_health"}
    assert {"precision", "recall", "f1", "support"} <= set(report["per_intent"]["money"])
    assert report["risk"]["acute_recall"] == 1.0
    text = run(cli_env, "nlu", "test", "--data", str(data))
    assert "precision" in text.stdout and "acute recall" in text.stdout


def test_nlu_test_missing_data_is_a_clear_error(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = run(cli_env, "nlu", "test", "--data", str(tmp_path / "nope"))
    assert result.returncode == 1
    assert "no such file or folder" in result.stderr


def test_nlu_train_and_catalogue_check(cli_env: dict[str, str]) -> None:
    trained = run(cli_env, "nlu", "train")
    assert trained.returncode == 0 and "trained the embedded model" in trained.stdout
    checked = run(cli_env, "catalogue", "check")
    assert checked.returncode == 0 and "catalogue ok" in checked.stdout
