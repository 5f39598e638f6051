from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from trustramp.cli import main
from trustramp.config import Phase, load_config, parse_config
from trustramp.errors import ConfigError


def test_defaults_are_the_playbooks_numbers() -> None:
    cfg = load_config(None)
    assert (cfg.routing.auto, cfg.routing.confirm, cfg.routing.review) == (0.95, 0.80, 0.60)
    rules = {r.metric: (r.warning, r.critical, r.action) for r in cfg.alerts.rules}
    assert rules == {
        "accuracy": (0.93, 0.90, "pause rollout"),
        "latency_p95": (5000, 10000, "scale up"),
        "error_rate": (0.02, 0.05, "roll back"),
        "override_rate": (0.30, 0.50, "investigate"),
    }
    assert cfg.statistics.confidence_level == 0.95 and cfg.statistics.min_samples == 200
    assert cfg.statistics.ece_threshold == 0.05 and cfg.statistics.ece_bins == 15
    assert cfg.phases[Phase.CONTROLLED].steps == [10, 25, 50]
    assert [e.role for e in cfg.escalation][:2] == ["On-call engineer", "ML Lead"]
    assert cfg.ordered_segments() == ["internal", "smb", "mid_market", "enterprise"]


@pytest.mark.parametrize(
    ("data", "key", "message"),
    [
        ({"routing": {"auto": 1.5}}, "routing.auto", "less than or equal to 1"),
        ({"routing": {"autoo": 0.9}}, "routing.autoo", "unknown key"),
        ({"colour": "red"}, "colour", "unknown key"),
        ({"statistics": {"ece_bins": 1}}, "statistics.ece_bins", "greater than or equal to 2"),
        (
            {
                "alerts": {
                    "rules": [
                        {
                            "metric": "accuracy",
                            "direction": "below",
                            "warning": 0.8,
                            "critical": 0.9,
                            "action": "x",
                        }
                    ]
                }
            },
            "alerts.rules.0",
            "critical (0.9) must be beyond warning",
        ),
        ({"phase": "controlled"}, "(top level)", "step must be one of [10, 25, 50]"),
        ({"phase": "launched"}, "phase", "Input should be"),
        ({"routing": {"review": 0.9}}, "routing", "bands must be ordered"),
        ({"segment_order": ["smb", "galaxy"]}, "(top level)", "segment 'galaxy'"),
    ],
)
def test_config_errors_name_the_key(data: dict, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(data, source="my.yaml")
    text = str(e.value)
    assert "my.yaml" in text and f"{key}:" in text and message in text


def test_yaml_custom_tags_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("feature: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_partial_config_merges_over_defaults(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"feature": "x", "routing": {"auto": 0.97}}))
    cfg = load_config(p)
    assert cfg.routing.auto == 0.97 and cfg.routing.confirm == 0.80 and cfg.feature == "x"
    assert cfg.hash() != load_config(None).hash()


def test_cli_config_validate_and_show(tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "good.yaml"
    good.write_text("feature: triage\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("feature: triage\nstatistics: {min_samples: 0}\n")
    r = runner.invoke(main, ["config", "validate", str(good)])
    assert r.exit_code == 0 and "ok" in r.output
    r = runner.invoke(main, ["config", "validate", str(bad)])
    assert (
        r.exit_code == 2 and "statistics.min_samples" in r.output and r.output.startswith("Error:")
    )
    r = runner.invoke(main, ["config", "show"])
    assert r.exit_code == 0 and parse_config(yaml.safe_load(r.output)).routing.auto == 0.95


def test_custom_segments_drop_the_default_scores() -> None:
    cfg = parse_config({"feature": "x", "segments": ["retail", "smb"]})
    assert cfg.segments == ["retail", "smb"] and list(cfg.segment_priority) == ["smb"]
    assert cfg.ordered_segments()[0] == "smb"  # scored segments first


@pytest.mark.parametrize(
    ("text", "key", "line", "first"),
    [
        ("feature: a\nfeature: b\n", "feature", 2, 1),
        ("feature: a\nrouting:\n  auto: 0.97\n  confirm: 0.8\n  auto: 0.9\n", "auto", 5, 3),
        ("feature: a\nrouting: {auto: 0.97, auto: 0.9}\n", "auto", 2, 2),
        (
            "feature: a\nalerts:\n  rules:\n    - metric: accuracy\n      direction: below\n"
            "      warning: 0.9\n      warning: 0.8\n",
            "warning",
            7,
            6,
        ),
    ],
)
def test_a_key_given_twice_is_refused_with_its_line(
    tmp_path: Path, text: str, key: str, line: int, first: int
) -> None:
    """YAML keeps the last of two equal keys silently; a config refuses them, naming both lines."""
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    expected = f"line {line}: duplicate key '{key}' (first given on line {first})"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(path)
    r = CliRunner().invoke(main, ["config", "validate", str(path)])
    assert r.exit_code == 2 and expected in r.output and "ok" not in r.output
    assert len(r.output.strip().splitlines()) == 1  # one line, no traceback


def test_equal_values_under_different_keys_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("feature: a\nrouting:\n  confirm: 0.8\n  targets: {confirm: 0.8}\n")
    assert load_config(path).routing.targets["confirm"] == 0.8


@pytest.mark.parametrize(
    ("routing", "thresholds"),
    [
        ({"auto": False}, {"auto": None, "confirm": 0.8, "review": 0.6}),
        ({"auto": False, "confirm": 0.97}, {"auto": None, "confirm": 0.97, "review": 0.6}),
        ({"confirm": False, "review": 0.9}, {"auto": 0.95, "confirm": None, "review": 0.9}),
        (
            {"auto": False, "confirm": False, "review": False},
            dict.fromkeys(("auto", "confirm", "review")),
        ),
        ({"review": 0}, {"auto": 0.95, "confirm": 0.8, "review": 0.0}),  # 0 is a threshold
    ],
)
def test_a_band_can_be_closed_with_false(routing: dict, thresholds: dict) -> None:
    cfg = parse_config({"feature": "x", "routing": routing})
    assert cfg.routing.thresholds() == thresholds
    for band, t in thresholds.items():
        assert (getattr(cfg.routing, band) is False) == (t is None)
    # config show writes false, and reads back the same
    shown = yaml.safe_dump(cfg.model_dump(mode="json"))
    assert parse_config(yaml.safe_load(shown)).routing == cfg.routing


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ({"auto": True}, "routing.auto: Input should be a threshold in [0, 1], or false"),
        ({"confirm": 1.5}, "routing.confirm: Input should be less than or equal to 1"),
        # ordered among the offered bands: review 0.97 above auto 0.95, confirm closed between
        ({"confirm": False, "review": 0.97}, "bands must be ordered review <= confirm <= auto"),
        ({"auto": False, "review": 0.9}, "bands must be ordered review <= confirm <= auto"),
        ({"segment_overrides": {"smb": {"review": True}}}, "segment_overrides.smb.review"),
    ],
)
def test_closed_bands_keep_the_checks(routing: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({"feature": "x", "routing": routing})


def test_an_override_inherits_with_null_and_closes_with_false() -> None:
    cfg = parse_config(
        {
            "feature": "x",
            "routing": {
                "confirm": 0.85,
                "segment_overrides": {"smb": {"auto": False}, "enterprise": {"auto": 0.99}},
                "customer_overrides": {"c1": {"auto": False, "confirm": False, "review": None}},
            },
        }
    )
    r = cfg.routing
    assert r.thresholds(r.segment_overrides["smb"]) == {
        "auto": None,
        "confirm": 0.85,
        "review": 0.6,
    }
    assert r.thresholds(r.segment_overrides["enterprise"])["auto"] == 0.99
    c1 = r.customer_overrides["c1"]
    assert c1.review is None and r.thresholds(c1) == {"auto": None, "confirm": None, "review": 0.6}
