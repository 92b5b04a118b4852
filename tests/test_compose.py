"""The rules docker-compose.yml must keep to take a helpline live (issue 14), read with PyYAML:
no Docker engine runs here (scripts/check-compose runs Docker Compose's own `config -q`).

Settings come from .env (env_file); the app does not wait for Rasa; Rasa keeps its models on a
volume and wants a token; only the proxy publishes ports; required variables stop `docker compose
up` with their name; every long-running service has a healthcheck; app and worker scale; the
Caddyfile serves DOMAIN and proxies to app:8000; .env.example and the settings agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import REPO_ROOT, Settings

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
CADDYFILE = REPO_ROOT / "Caddyfile"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
CHECK_SCRIPT = REPO_ROOT / "scripts" / "check-compose"

# `${NAME:?message}`: required; `${NAME:-default}` or `${NAME}`: optional.
_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:?[?\-])([^}]*))?\}")
_ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")
# The variables `docker compose up` must refuse to start without.
REQUIRED = {"DOMAIN", "PUBLIC_BASE_URL", "SECRET_KEY", "POSTGRES_PASSWORD", "RASA_TOKEN"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _variables(text: str) -> dict[str, set[str]]:
    """Each ${...} variable with the operators it is used with ("" for none)."""
    found: dict[str, set[str]] = {}
    for name, operator, _ in _VARIABLE.findall(text):
        found.setdefault(name, set()).add(operator)
    return found


def _settings_aliases() -> set[str]:
    return {(field.alias or name).upper() for name, field in Settings.model_fields.items()}


def _env_example() -> dict[str, tuple[bool, str]]:
    """NAME -> (set, i.e. not commented out; value) for every NAME=... line of .env.example."""
    lines: dict[str, tuple[bool, str]] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = _ASSIGNMENT.match(line.strip())
        if match:
            lines[match.group(2)] = (match.group(1) is None, match.group(3))
    return lines


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return {name: "service_started" for name in depends}
    return {name: (rule or {}).get("condition", "service_started") for name, rule in depends.items()}


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def _one_shot(name: str, services: dict[str, dict[str, Any]]) -> bool:
    """A job that runs to its end (migrations): restart "no", and whoever waits for it waits
    for it to complete successfully."""
    waiting = [_depends_on(s).get(name) for s in services.values() if name in _depends_on(s)]
    return (str(services[name].get("restart", "no")) == "no" and bool(waiting)
            and all(rule == "service_completed_successfully" for rule in waiting))


# ---- the services ---------------------------------------------------------------------------


def test_the_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"proxy", "app", "worker", "postgres", "redis", "rasa"} <= set(services)


@pytest.mark.parametrize("name", ["app", "worker"])
def test_app_and_worker_read_every_setting_from_dot_env(
        services: dict[str, dict[str, Any]], name: str) -> None:
    env_file = services[name].get("env_file")
    files = [env_file] if isinstance(env_file, str) else list(env_file or [])
    paths = [f if isinstance(f, str) else f.get("path") for f in files]
    assert ".env" in paths
    # A .env file that is missing must stop compose, not start a line on defaults.
    assert all(isinstance(f, str) or f.get("required", True) for f in files)


@pytest.mark.parametrize("name", ["app", "worker"])
def test_app_and_worker_run_in_production_on_the_compose_services(
        services: dict[str, dict[str, Any]], name: str) -> None:
    env = _environment(services[name])
    assert env["OUDERTELEFOON_ENV"] == "production"
    assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:")
    assert env["NLU_BACKEND"] == "rasa" and env["RASA_URL"] == "http://rasa:5005"
    for variable in ("SECRET_KEY", "PUBLIC_BASE_URL", "RASA_TOKEN"):
        assert _variables(env[variable]) == {variable: {":?"}}, variable
    assert _variables(env["DATABASE_URL"]) == {"POSTGRES_PASSWORD": {":?"}}


def test_the_app_does_not_wait_for_rasa(services: dict[str, dict[str, Any]]) -> None:
    """It starts on the embedded model and uses Rasa from its first answer
    (tests/bot/triage/test_rasa_switch.py): training (minutes) or a failed training never keeps
    the line down."""
    for name in ("app", "worker", "proxy"):
        assert "rasa" not in _depends_on(services[name]), name
    app = _depends_on(services["app"])
    assert app.get("postgres") == "service_healthy" and app.get("redis") == "service_healthy"


def test_rasa_keeps_its_models_on_a_named_volume(compose: dict[str, Any],
                                                 services: dict[str, dict[str, Any]]) -> None:
    volumes = services["rasa"].get("volumes") or []
    mounts = {}
    for volume in volumes:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = source
    dockerfile = (REPO_ROOT / services["rasa"]["build"]["dockerfile"]).read_text(encoding="utf-8")
    model_dir = re.search(r"RASA_MODEL_DIR=(\S+)", dockerfile)
    assert model_dir, "Dockerfile.rasa sets RASA_MODEL_DIR"
    source = mounts.get(model_dir.group(1))
    assert source is not None, f"no volume on {model_dir.group(1)}"
    assert not source.startswith((".", "/")) and source in (compose.get("volumes") or {})


def test_rasa_trains_only_when_the_data_changed(services: dict[str, dict[str, Any]]) -> None:
    """Dockerfile.rasa runs scripts/rasa-server, whose model name is a hash of the config, the
    training files and the Rasa version: an existing model for the same data is served as is."""
    dockerfile = (REPO_ROOT / services["rasa"]["build"]["dockerfile"]).read_text(encoding="utf-8")
    assert re.search(r'^CMD \["scripts/rasa-server", "serve"\]$', dockerfile, re.MULTILINE)
    assert "COPY data/nlu/*.yml" in dockerfile  # top-level files only, no held-out splits
    assert not re.search(r"COPY data/nlu(/)? ", dockerfile)
    script = (REPO_ROOT / "scripts" / "rasa-server").read_text(encoding="utf-8")
    assert 'nlu-%s.tar.gz' in script and "sha256sum" in script
    assert 'if [[ -f "$model" ]]; then' in script  # up to date: no training


def test_rasa_runs_with_an_auth_token_from_the_environment(
        services: dict[str, dict[str, Any]]) -> None:
    rasa = services["rasa"]
    assert _variables(_environment(rasa)["RASA_TOKEN"]) == {"RASA_TOKEN": {":?"}}
    script = (REPO_ROOT / "scripts" / "rasa-server").read_text(encoding="utf-8")
    assert "run --enable-api" in script
    assert re.search(r"--auth-token \"\$RASA_TOKEN\"", script)
    # The healthcheck asks /status with the token, read inside the container.
    test = " ".join(rasa["healthcheck"]["test"])
    assert "/status?token=" in test and "RASA_TOKEN" in test and "${RASA_TOKEN" not in test
    assert not rasa.get("ports")


def test_only_the_proxy_publishes_ports(services: dict[str, dict[str, Any]]) -> None:
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}
    ports = {str(p).split("/")[0] if isinstance(p, (str, int)) else str(p.get("published"))
             for p in services["proxy"]["ports"]}
    assert {p.split(":")[-2] if p.count(":") else p for p in ports} == {"80", "443"}
    assert all(not s.get("network_mode") for s in services.values())  # no host networking


def test_the_proxy_is_caddy_with_the_caddyfile_and_domain(services: dict[str, dict[str, Any]]) -> None:
    proxy = services["proxy"]
    assert str(proxy["image"]).startswith("caddy:")
    assert any(str(v).startswith("./Caddyfile:/etc/caddy/Caddyfile") for v in proxy["volumes"])
    assert any(str(v).endswith(":/data") for v in proxy["volumes"])  # certificates survive
    assert _variables(_environment(proxy)["DOMAIN"]) == {"DOMAIN": {":?"}}


def test_the_caddyfile_serves_domain_and_proxies_to_app_8000() -> None:
    text = CADDYFILE.read_text(encoding="utf-8")
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert re.search(r"^\{\$DOMAIN\}\s*\{", code, re.MULTILINE), "a site block for {$DOMAIN}"
    upstream = re.search(r"reverse_proxy\s*(\S*)\s*\{(.*?)\n\t\}", code, re.DOTALL)
    assert upstream
    target = upstream.group(1) + " " + upstream.group(2)
    assert re.search(r"dynamic a app 8000|app:8000", target)
    assert "flush_interval -1" in code  # the dashboard's event stream is not buffered
    assert "tls internal" not in code and "auto_https off" not in code


def test_the_app_believes_forwarded_headers_from_the_proxy_network_only(
        compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    allow = _environment(services["app"])["FORWARDED_ALLOW_IPS"]
    assert "*" not in allow
    edge = [n for n, net in (compose.get("networks") or {}).items()
            if (net or {}).get("ipam")]
    assert edge == ["edge"]
    subnet = compose["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    assert allow == subnet  # the same expression, with the same default
    # On the edge network: the proxy and the app, nothing else; the proxy on no other.
    on_edge = {name for name, s in services.items() if "edge" in (s.get("networks") or [])}
    assert on_edge == {"proxy", "app"}
    assert services["proxy"]["networks"] == ["edge"]


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if _one_shot(name, services):
            continue
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), name
        assert service.get("restart") in ("unless-stopped", "always"), name


def test_the_worker_healthcheck_is_its_heartbeat(services: dict[str, dict[str, Any]]) -> None:
    test = services["worker"]["healthcheck"]["test"]
    assert test[:1] == ["CMD"] and test[1:4] == ["oudertelefoon", "worker", "--check"]


def test_migrations_run_once_before_app_and_worker(services: dict[str, dict[str, Any]]) -> None:
    one_shots = [name for name in services if _one_shot(name, services)]
    assert one_shots == ["migrate"]
    assert services["migrate"]["command"] == ["oudertelefoon", "db", "upgrade"]
    for name in ("app", "worker"):
        assert _depends_on(services[name]).get("migrate") == "service_completed_successfully"
        assert "db upgrade" not in " ".join(map(str, services[name].get("command", [])))


@pytest.mark.parametrize("name", ["app", "worker"])
def test_app_and_worker_can_scale(services: dict[str, dict[str, Any]], name: str) -> None:
    """`docker compose up --scale app=3 --scale worker=2`: no fixed name, no host port."""
    service = services[name]
    assert "container_name" not in service and not service.get("ports")
    assert "hostname" not in service  # the worker's heartbeat is per container host name


def test_required_variables_use_the_error_form(compose: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    used = _variables(text)
    required = {name for name, operators in used.items() if ":?" in operators}
    assert required == REQUIRED
    for name in REQUIRED:
        assert used[name] == {":?"}, f"{name} is required everywhere it is used"
    # Each error message names the file to fix.
    for name, operator, message in _VARIABLE.findall(text):
        if operator == ":?":
            assert ".env" in message, name
    # No secret has a default anywhere.
    assert "POSTGRES_PASSWORD:-" not in text and "SECRET_KEY:-" not in text


def test_check_compose_requires_the_same_variables() -> None:
    script = CHECK_SCRIPT.read_text(encoding="utf-8")
    listed = re.search(r"^REQUIRED=\(([^)]*)\)", script, re.MULTILINE)
    assert listed and set(listed.group(1).split()) == REQUIRED
    assert "config -q" in script


# ---- .env.example and the settings ----------------------------------------------------------


def test_every_variable_in_env_example_is_a_setting_or_a_compose_variable() -> None:
    compose_variables = set(_variables(COMPOSE_FILE.read_text(encoding="utf-8")))
    known = _settings_aliases() | compose_variables
    unknown = set(_env_example()) - known
    assert not unknown, f".env.example names what nothing reads: {sorted(unknown)}"


def test_env_example_lists_every_setting() -> None:
    missing = _settings_aliases() - set(_env_example())
    assert not missing, f"add to .env.example (with its default, commented out): {sorted(missing)}"


def test_exactly_the_required_variables_are_set_and_empty_in_env_example() -> None:
    """Copied unchanged, .env.example stops `docker compose up` (empty counts as unset for
    `:?`) instead of starting a line with a placeholder secret."""
    lines = _env_example()
    set_lines = {name for name, (is_set, _) in lines.items() if is_set}
    assert set_lines == REQUIRED
    assert all(lines[name][1] == "" for name in REQUIRED)


def test_production_requires_what_compose_requires(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings the app refuses to start without in production are required in compose too
    (and so in .env.example)."""
    from bot.config import load_settings
    from bot.errors import ConfigError

    monkeypatch.chdir(tmp_path)  # no .env file
    for name in ("SECRET_KEY", "PUBLIC_BASE_URL", "RASA_TOKEN", "NLU_BACKEND"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(ConfigError) as error:
        load_settings(OUDERTELEFOON_ENV="production", OUDERTELEFOON_VAR_DIR=tmp_path,
                      SECRET_KEY="", PUBLIC_BASE_URL="https://hulp.oudertelefoon.nl")
    assert "SECRET_KEY" in str(error.value)
    with pytest.raises(ConfigError) as error:
        load_settings(OUDERTELEFOON_ENV="production", OUDERTELEFOON_VAR_DIR=tmp_path,
                      SECRET_KEY="Jq3vN0x_Wm7sTz2LbY8cRk5dHf1gPa4eUo6iVn9wXlE", NLU_BACKEND="rasa")
    message = str(error.value)
    assert "PUBLIC_BASE_URL" in message and "RASA_TOKEN" in message
    assert {"SECRET_KEY", "PUBLIC_BASE_URL", "RASA_TOKEN"} <= REQUIRED


# ---- the README's going-live steps match the files ------------------------------------------


def _going_live_section() -> str:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Production: `docker compose up`")
    return readme[start:readme.index("\n### ", start)]


def test_the_readme_commands_exist() -> None:
    """Every `oudertelefoon ...` command in the steps parses, every service named in a `docker
    compose exec/stop/start/pull` exists, every webhook path is one the app serves."""
    import shlex

    from bot.channels.telegram import WEBHOOK_PATH
    from bot.channels.twilio import MESSAGING_PATH, STATUS_PATH
    from bot.channels.voice import CALL_STATUS_PATH, VOICE_PATH
    from bot.cli import build_parser

    section = _going_live_section()
    services = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]
    commands = re.findall(r"oudertelefoon ((?:users|catalogue|telegram|handoff|worker|db) [^`\n]*)",
                          section)
    assert len(commands) >= 5
    for command in commands:
        argv = [part.replace("+316...", "+31612345678") for part in shlex.split(command)]
        build_parser().parse_args(argv)  # exits (SystemExit) on an unknown command or option
    for verb, names in re.findall(r"docker compose (exec -T|exec|stop|start|pull) ([a-z ]+)", section):
        named = names.split()
        if verb.startswith("exec"):
            named = named[:1]
        assert set(named) <= set(services), (verb, named)
    paths = set(re.findall(r"(/webhooks/[a-z/]+)", section))
    assert paths == {WEBHOOK_PATH, MESSAGING_PATH, STATUS_PATH, VOICE_PATH, CALL_STATUS_PATH}
    for required in REQUIRED:
        assert f"`{required}`" in section
    # Scaling out is safe since issue 13: the step names the command and what keeps it safe.
    assert "--scale app=3 --scale worker=2" in section and "serve --workers" in section
    assert "in order per conversation across workers" in section
