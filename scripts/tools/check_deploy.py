#!/usr/bin/env python3
"""Parses the Dockerfile and docker-compose.yml and checks the deploy shape.

    check_deploy.py check              # parse both files, check what we promise
    check_deploy.py plan > plan.sh     # the Dockerfile's build and start steps, as shell

The Dockerfile is parsed by BuildKit's own parser (the `dockerfile` package);
docker-compose.yml by the validating `compose_spec` parser after YAML merge
keys (`<<`) are resolved, as docker compose does. `plan` prints shell
assignments that scripts/check-ops.sh uses to run the Dockerfile's exact build
and start commands outside Docker.
"""

import json
import shlex
import sys

import compose_spec
import dockerfile
import yaml


def stages(path="Dockerfile"):
    """[(name, base, [instructions])] in order."""
    out = []
    for ins in dockerfile.parse_file(path):
        if ins.cmd.upper() == "FROM":
            value = list(ins.value)
            name = value[2] if len(value) >= 3 and value[1].upper() == "AS" else None
            out.append((name, value[0], []))
        else:
            if not out:
                raise SystemExit(f"{path}: {ins.cmd} before the first FROM")
            out[-1][2].append(ins)
    return out


def instructions(stage, cmd):
    return [i for i in stage[2] if i.cmd.upper() == cmd]


def env_of(stage):
    env = {}
    for ins in instructions(stage, "ENV"):
        value = list(ins.value)
        for k, v in zip(value[::2], value[1::2]):
            env[k] = v
    return env


def check_dockerfile(problems):
    st = stages()
    names = [s[0] for s in st]
    for want in ("web", "builder"):
        if want not in names:
            problems.append(f"Dockerfile: no stage named {want!r} (stages: {names})")
    final = st[-1]
    users = instructions(final, "USER")
    if not users or users[-1].value[0] in ("root", "0"):
        problems.append("Dockerfile: the final image must run as a non-root USER")
    if not instructions(final, "HEALTHCHECK"):
        problems.append("Dockerfile: the final image has no HEALTHCHECK")
    if not any("/data" in i.value for i in instructions(final, "VOLUME")):
        problems.append("Dockerfile: the final image has no VOLUME for /data")
    if env_of(final).get("DATA_DIR") != "/data":
        problems.append("Dockerfile: DATA_DIR is not /data in the final image")
    if not instructions(final, "ENTRYPOINT"):
        problems.append("Dockerfile: no ENTRYPOINT in the final image")
    copies = [" ".join(i.flags) + " " + " ".join(i.value) for i in instructions(final, "COPY")]
    if not any("--from=builder" in c and "tidings" in c for c in copies):
        problems.append("Dockerfile: the final image does not copy the binary from the builder stage")
    return st


def check_compose(problems, path="docker-compose.yml"):
    with open(path) as f:
        data = yaml.safe_load(f)  # resolves the << merge keys
    try:
        spec = compose_spec.PyCompose.from_json(json.dumps(data))
    except ValueError as err:
        problems.append(f"{path}: not a valid Compose file: {err}")
        return
    services = spec.to_dict()["services"]
    for want in ("postgres", "redis", "tidings-1", "tidings-2", "proxy"):
        if want not in services:
            problems.append(f"{path}: no service {want!r}")
    for name, svc in services.items():
        ports = svc.get("ports") or []
        if name != "proxy" and ports:
            problems.append(f"{path}: {name} publishes ports; only the proxy should")
        if name in ("postgres", "redis") and not svc.get("healthcheck"):
            problems.append(f"{path}: {name} has no healthcheck")
    for replica in ("tidings-1", "tidings-2"):
        svc = services.get(replica, {})
        env = svc.get("environment") or {}
        for key in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET"):
            if key not in env:
                problems.append(f"{path}: {replica} does not set {key}")
        # Behind the proxy every client has the proxy's address.
        if str(env.get("TRUST_PROXY", "")).lower() != "true":
            problems.append(
                f"{path}: {replica} does not set TRUST_PROXY=true: behind the proxy, "
                "every client would share one per-address budget"
            )
        deps = svc.get("depends_on") or {}
        for dep in ("postgres", "redis"):
            if (deps.get(dep) or {}).get("condition") != "service_healthy":
                problems.append(f"{path}: {replica} does not wait for {dep} to be healthy")
        if not svc.get("build"):
            problems.append(f"{path}: {replica} is not built from the Dockerfile")
    proxy = services.get("proxy", {})
    if not proxy.get("ports"):
        problems.append(f"{path}: the proxy publishes no port")
    print(f"{path}: valid; services: {', '.join(sorted(services))}")


def plan():
    """Shell assignments: the build and start steps of the Dockerfile."""
    all_stages = stages()
    web = next(s for s in all_stages if s[0] == "web")
    builder = next(s for s in all_stages if s[0] == "builder")
    final = all_stages[-1]
    lines = []
    lines.append("WEB_RUN=(" + " ".join(shlex.quote(i.value[0]) for i in instructions(web, "RUN")) + ")")
    lines.append("BUILDER_ENV=(" + " ".join(shlex.quote(f"{k}={v}") for k, v in env_of(builder).items()) + ")")
    lines.append("BUILDER_RUN=(" + " ".join(shlex.quote(i.value[0]) for i in instructions(builder, "RUN")) + ")")
    lines.append("FINAL_ENV=(" + " ".join(shlex.quote(f"{k}={v}") for k, v in env_of(final).items()) + ")")
    entry = instructions(final, "ENTRYPOINT")[-1]
    lines.append("ENTRYPOINT=(" + " ".join(shlex.quote(v) for v in entry.value) + ")")
    health = instructions(final, "HEALTHCHECK")[-1].value
    if health[0].upper() != "CMD":
        raise SystemExit("Dockerfile: HEALTHCHECK is not a CMD")
    lines.append("HEALTHCHECK_CMD=" + shlex.quote(" ".join(health[1:])))
    lines.append("FINAL_USER=" + shlex.quote(instructions(final, "USER")[-1].value[0]))
    lines.append("EXPOSE=" + shlex.quote(instructions(final, "EXPOSE")[-1].value[0]))
    print("\n".join(lines))


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "check"
    if what == "plan":
        plan()
        return
    problems = []
    st = check_dockerfile(problems)
    print(f"Dockerfile: parsed; stages: {', '.join(s[0] or s[1] for s in st)}")
    check_compose(problems)
    for p in problems:
        print(f"FAIL {p}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
