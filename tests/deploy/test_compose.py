"""The deployment files agree with the code: docker-compose.yml, Dockerfile, .dockerignore.

No Docker engine runs where these tests run, so they check what can be checked without
one: the compose file parses; it names only images, ports, environment variables,
commands and search attributes that exist in the code; start order and shutdown grace
periods fit what the processes do. Values are read the way `docker compose up` reads
them without a `.env` file: every `${VAR:-default}` takes its default.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from sqlalchemy.engine import make_url
from temporalio.api.enums.v1 import IndexedValueType

import cli.gateway
import examples.services
from core.settings import Settings
from core.temporal import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"

# The services that run this project's code (the image built from the Dockerfile).
OUR_SERVICES = ("gateway", "worker", "examples", "migrate")
# The ones that read core.settings.Settings and talk to Temporal and the registry.
SETTINGS_SERVICES = ("gateway", "worker", "migrate")
TEMPORAL_CLIENTS = ("gateway", "worker")
TEMPORAL_DATABASES = {"temporal", "temporal_visibility"}

# What an operator must export before `docker compose up` (compose refuses without them).
OPERATOR_ENV = {
    "API_KEYS": "operator-key",
    "ENCRYPTION_KEYS": "k1:" + "A" * 43 + "=",
    "DEFINITION_SIGNING_KEY": "a-long-random-secret",
}

_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


# --------------------------------------------------------------------------- helpers


def interpolate(value: Any, env: dict[str, str] | None = None) -> Any:
    """A value as compose sees it: `${VAR:-default}` resolved against `env`, `$$` -> `$`."""
    if not isinstance(value, str):
        return value
    env = env or {}

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, default = match.group(2), match.group(3) or ""
        current = env.get(name)
        if operator == ":-" and not current:
            return default
        if operator == "-" and current is None:
            return default
        if operator in (":?", "?") and not current:
            raise AssertionError(f"compose requires {name} to be set: {default}")
        return current or ""

    return _VARIABLE.sub(substitute, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    """A service's environment, as a mapping, interpolated against what an operator
    exports (OPERATOR_ENV by default)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    given = OPERATOR_ENV if env is None else env
    return {key: str(interpolate(value, given)) for key, value in raw.items()}


def command(service: dict[str, Any]) -> list[str]:
    raw = service.get("command")
    assert isinstance(raw, list), f"give the command in exec form (a list), not {raw!r}"
    return [str(interpolate(part)) for part in raw]


def container_ports(service: dict[str, Any]) -> dict[int, str | None]:
    """Container port -> published host port (None when only exposed inside the network)."""
    ports: dict[int, str | None] = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports[int(entry["target"])] = str(entry.get("published")) or None
            continue
        parts = str(interpolate(entry)).split("/")[0].split(":")
        ports[int(parts[-1])] = parts[-2] if len(parts) > 1 else None
    return ports


def seconds(duration: str) -> float:
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def dependencies(services: dict[str, dict[str, Any]], name: str) -> dict[str, str]:
    """Direct dependencies of a service: name -> condition."""
    raw = services[name].get("depends_on") or {}
    if isinstance(raw, list):
        return {dependency: "service_started" for dependency in raw}
    return {
        dependency: spec.get("condition", "service_started") for dependency, spec in raw.items()
    }


def all_dependencies(services: dict[str, dict[str, Any]], name: str) -> set[str]:
    seen: set[str] = set()
    pending = [name]
    while pending:
        for dependency in dependencies(services, pending.pop()):
            if dependency not in seen:
                seen.add(dependency)
                pending.append(dependency)
    return seen


def settings_from(env: dict[str, str]) -> Settings:
    """Settings built only from `env` (no .env file), so validators run on compose's values."""
    return Settings(_env_file=None, **{key.lower(): value for key, value in env.items()})


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def dockerfile_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, arguments in stage:
        if keyword == "ENV":
            for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', arguments):
                values[key] = value.strip('"')
    return values


def console_scripts() -> dict[str, str]:
    return tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run one of the project's console scripts from this virtualenv."""
    script = Path(sys.executable).parent / args[0]
    assert script.exists(), f"console script {args[0]!r} is not installed next to {sys.executable}"
    return subprocess.run(
        [str(script), *args[1:]], capture_output=True, text=True, timeout=60, check=False
    )


def search_attributes_in(script: str) -> Iterator[tuple[str, str]]:
    """The (name, type) pairs a registration script passes to `register NAME TYPE`."""
    for match in re.finditer(r"^\s*register\s+(\w+)\s+(\w+)\s*$", script, re.MULTILINE):
        yield match.group(1), match.group(2)


# --------------------------------------------------------------------------- compose


def test_compose_file_parses_into_services(compose: dict[str, Any]) -> None:
    assert isinstance(compose, dict)
    assert isinstance(compose.get("services"), dict) and compose["services"]
    expected = {
        "postgresql",
        "temporal",
        "temporal-ui",
        "temporal-search-attributes",
        "gateway",
        "worker",
        "examples",
    }
    assert expected <= set(compose["services"]), expected - set(compose["services"])


def test_every_service_has_an_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert service.get("image") or service.get("build"), f"{name} has neither image nor build"
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = (
                "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            )
            assert (ROOT / context / dockerfile).is_file(), (
                f"{name} builds from a missing Dockerfile"
            )


def test_our_services_share_the_image_built_here(services: dict[str, dict[str, Any]]) -> None:
    images = {services[name].get("image") for name in OUR_SERVICES}
    assert len(images) == 1, (
        f"gateway, worker, examples and migrate should share one image: {images}"
    )
    assert all(services[name].get("build") for name in OUR_SERVICES)


def test_external_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if service.get("build"):
            continue
        image = str(interpolate(service["image"]))
        repository, _, tag = image.rpartition(":")
        assert repository and tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: pin {image!r} to a version"
        assert re.match(r"\d", tag), f"{name}: tag of {image!r} is not a version"


def test_temporal_runs_from_official_images_on_postgresql(
    services: dict[str, dict[str, Any]],
) -> None:
    images = {name: str(service.get("image", "")) for name, service in services.items()}
    assert images["temporal"].startswith("temporalio/server:")
    assert images["temporal-ui"].startswith("temporalio/ui:")
    assert images["temporal-search-attributes"].startswith("temporalio/admin-tools:")
    assert images["postgresql"].startswith("postgres:16")
    server = environment(services["temporal"])
    assert server["DB"] == "postgres12"
    assert server["POSTGRES_SEEDS"] == "postgresql"
    # admin-tools and server come from the same release, so the schema fits the server.
    versions = {
        images[name].rpartition(":")[2]
        for name, image in images.items()
        if image.startswith(("temporalio/server:", "temporalio/admin-tools:"))
    }
    assert len(versions) == 1, f"temporalio/server and admin-tools versions differ: {versions}"


def test_our_services_set_only_settings_fields(services: dict[str, dict[str, Any]]) -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name in OUR_SERVICES:
        unknown = set(environment(services[name])) - fields
        assert not unknown, f"{name} sets {sorted(unknown)}, which core.settings.Settings lacks"


def test_settings_accept_the_values_compose_gives(services: dict[str, dict[str, Any]]) -> None:
    # Settings' validators run here: a value they refuse would stop the container at start.
    for name in SETTINGS_SERVICES:
        settings = settings_from(environment(services[name]))
        assert settings.environment == "production", f"{name} does not run as production"


@pytest.mark.parametrize("missing", sorted(OPERATOR_ENV))
def test_compose_refuses_to_start_without_each_production_secret(
    services: dict[str, dict[str, Any]], missing: str
) -> None:
    env = {key: value for key, value in OPERATOR_ENV.items() if key != missing}
    for name in SETTINGS_SERVICES:
        with pytest.raises(AssertionError, match=f"requires {missing} to be set"):
            environment(services[name], env)


def test_production_settings_refuse_unsafe_values() -> None:
    with pytest.raises(ValueError) as refused:
        Settings(_env_file=None, environment="production", allowed_hosts="*")
    message = str(refused.value)
    for needed in ("API_KEYS", "ALLOWED_HOSTS=*", "ENCRYPTION_KEYS", "DEFINITION_SIGNING_KEY"):
        assert needed in message
    safe = {key.lower(): value for key, value in OPERATOR_ENV.items()}
    assert Settings(_env_file=None, environment="production", **safe).api_key_set


def test_registry_is_its_own_postgresql_database(services: dict[str, dict[str, Any]]) -> None:
    urls = {name: environment(services[name]).get("DATABASE_URL") for name in SETTINGS_SERVICES}
    assert len(set(urls.values())) == 1, f"gateway, worker and migrate disagree: {urls}"
    url = make_url(settings_from({"DATABASE_URL": urls["gateway"] or ""}).resolved_database_url)
    assert url.drivername == "postgresql+asyncpg"
    assert url.host in services, f"registry host {url.host!r} is not a compose service"
    assert url.database not in TEMPORAL_DATABASES, "the registry must not share Temporal's database"
    postgres = environment(services[url.host])
    assert url.database == postgres["POSTGRES_DB"], "nothing creates the registry database"
    assert (url.username, url.password) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )
    temporal = environment(services["temporal"])
    assert (temporal["POSTGRES_USER"], temporal["POSTGRES_PWD"]) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )


def test_temporal_clients_share_address_namespace_and_task_queue(
    services: dict[str, dict[str, Any]],
) -> None:
    seen = set()
    for name in TEMPORAL_CLIENTS:
        settings = settings_from(environment(services[name]))
        host, _, port = settings.temporal_address.rpartition(":")
        assert host in services and port == "7233", f"{name}: {settings.temporal_address}"
        seen.add((settings.temporal_address, settings.temporal_namespace, settings.task_queue))
    assert len(seen) == 1, f"gateway and worker must use one Temporal queue: {seen}"
    namespace = seen.pop()[1]
    for name in ("temporal-namespace", "temporal-search-attributes"):
        assert environment(services[name])["TEMPORAL_NAMESPACE"] == namespace, name


def test_gateway_port_matches_settings(services: dict[str, dict[str, Any]]) -> None:
    gateway_service = services["gateway"]
    settings = settings_from(environment(gateway_service))
    assert settings.gateway_port == Settings.model_fields["gateway_port"].default == 8005
    assert settings.gateway_host == "0.0.0.0", "the gateway must listen on all interfaces"
    ports = container_ports(gateway_service)
    assert settings.gateway_port in ports, f"port {settings.gateway_port} not published: {ports}"
    assert ports[settings.gateway_port] == str(settings.gateway_port)
    assert f":{settings.gateway_port}/api/health" in " ".join(
        gateway_service["healthcheck"]["test"]
    )


def test_examples_port_matches_the_examples_default(services: dict[str, dict[str, Any]]) -> None:
    default_port = inspect.signature(examples.services.main).parameters["port"].default
    assert default_port == 8006
    service = services["examples"]
    assert default_port in container_ports(service)
    argv = command(service)
    if "--port" in argv:
        assert argv[argv.index("--port") + 1] == str(default_port)
    assert f":{default_port}/" in " ".join(service["healthcheck"]["test"])


def test_worker_can_scale(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container_name prevents --scale worker=N"
    assert "hostname" not in worker, "replicas would share one hostname (and worker identity)"
    assert not worker.get("ports"), "published ports collide between replicas"
    assert worker.get("deploy", {}).get("replicas", 1) >= 1


def test_search_attributes_match_core_temporal(services: dict[str, dict[str, Any]]) -> None:
    script = "\n".join(command(services["temporal-search-attributes"]))
    assert "temporal operator search-attribute create" in script
    registered = dict(search_attributes_in(script))
    kinds = {
        name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
        for name, kind in registered.items()
    }
    assert kinds == SEARCH_ATTRIBUTES


def test_dependencies_exist_and_health_conditions_have_healthchecks(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in services:
        for dependency, condition in dependencies(services, name).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition == "service_healthy":
                assert services[dependency].get("healthcheck"), (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )
            if condition == "service_completed_successfully":
                restart = str(services[dependency].get("restart", "no"))
                assert restart in ("no", "on-failure") or restart.startswith("on-failure:"), (
                    f"{dependency} is a one-shot job; restart={restart} would never complete"
                )


def test_gateway_and_worker_start_after_schemas_and_search_attributes(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in TEMPORAL_CLIENTS:
        before = all_dependencies(services, name)
        required = {"postgresql", "temporal", "migrate", "temporal-search-attributes"}
        assert required <= before, f"{name} may start before {sorted(required - before)}"
        direct = dependencies(services, name)
        assert direct["migrate"] == "service_completed_successfully"
        assert direct["temporal-search-attributes"] == "service_completed_successfully"
    assert dependencies(services, "temporal")  # the server waits for its schema


def test_worker_grace_period_covers_graceful_shutdown(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    drain = settings_from(environment(worker)).worker_graceful_shutdown_seconds
    assert seconds(worker["stop_grace_period"]) > drain, (
        "Docker would SIGKILL the worker before WORKER_GRACEFUL_SHUTDOWN_SECONDS is over"
    )


def test_gateway_grace_period_covers_request_draining(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(cli.gateway.uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(cli.gateway.logging, "basicConfig", lambda **kwargs: None)
    cli.gateway.main()
    (options,) = calls
    drain = options.get("timeout_graceful_shutdown") or 0
    assert drain > 0, "uvicorn drains in-flight requests only with timeout_graceful_shutdown"
    assert seconds(services["gateway"]["stop_grace_period"]) > drain


# --------------------------------------------------------------------------- commands


def test_compose_commands_are_commands_of_the_project(services: dict[str, dict[str, Any]]) -> None:
    scripts = console_scripts()
    for name in OUR_SERVICES:
        argv = command(services[name])
        if argv[0] in scripts:
            subcommand, options = argv[1], [a for a in argv[2:] if a.startswith("--")]
            result = run_cli(argv[0], subcommand, "--help")
            assert result.returncode == 0, f"{name}: `{argv[0]} {subcommand}`: {result.stderr}"
            for option in options:
                assert option in result.stdout, f"{name}: {subcommand} has no {option}"
        elif argv[0] == "uvicorn":
            module, _, attribute = argv[1].partition(":")
            target = getattr(importlib.import_module(module), attribute)
            assert callable(target)
            if "--factory" in argv:
                assert target().__class__.__name__ == "FastAPI"
            assert argv[argv.index("--host") + 1] == "0.0.0.0", (
                f"{name} must listen on all interfaces"
            )
        else:
            pytest.fail(f"{name} runs {argv[0]!r}, which is neither a console script nor uvicorn")


def test_dockerfile_cmd_is_a_console_script_subcommand() -> None:
    (cmd,) = [arguments for keyword, arguments in final_stage() if keyword == "CMD"]
    argv = json.loads(cmd)  # exec form: the process gets SIGTERM directly
    assert argv[0] in console_scripts(), f"{argv[0]!r} is not in [project.scripts]"
    assert argv[1:] == ["gateway"], "the image's default command runs the gateway"
    result = run_cli(*argv, "--help")
    assert result.returncode == 0, result.stderr


def test_dockerfile_runs_as_non_root() -> None:
    users = [arguments for keyword, arguments in final_stage() if keyword == "USER"]
    assert users, "the final stage never leaves root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_dockerfile_base_image_satisfies_requires_python() -> None:
    requires = tomllib.loads(PYPROJECT.read_text())["project"]["requires-python"]
    bases = [
        arguments.split()[0]
        for keyword, arguments in dockerfile_instructions()
        if keyword == "FROM"
    ]
    assert bases
    for base in bases:
        match = re.fullmatch(r"python:(\d+\.\d+)-slim(?:-\w+)?", base)
        assert match, f"base image {base!r} is not python:<version>-slim"
        assert match.group(1) in SpecifierSet(requires), f"{base} does not satisfy {requires}"


def test_dockerfile_env_names_settings_fields() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    names = set(dockerfile_env(final_stage()))
    ours = {n for n in names if not n.startswith(("PYTHON", "PIP_")) and n != "PATH"}
    assert ours <= fields, f"Dockerfile sets {sorted(ours - fields)}, unknown to Settings"
    assert "/opt/venv/bin" in dockerfile_env(final_stage())["PATH"]


def test_dockerignore_keeps_the_packages_and_drops_local_state() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, pattern.rstrip("/")) for pattern in patterns)

    setuptools = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]
    packages = setuptools["packages"]["find"]["include"]
    for package in {p.split("*")[0].split(".")[0] for p in packages}:
        assert not ignored(package), f".dockerignore drops the package {package}"
    assert not ignored("pyproject.toml")
    for local in (".git", ".venv", ".env", "data", "tests"):
        assert ignored(local), f".dockerignore should keep {local} out of the image"
