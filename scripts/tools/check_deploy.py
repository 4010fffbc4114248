#!/usr/bin/env python3
"""Parses the Dockerfile and docker-compose.yml and checks the deploy shape.

    check_deploy.py check              # parse both files, check what we promise
    check_deploy.py selftest           # each known-bad change to the files must fail `check`
    check_deploy.py plan > plan.sh     # the Dockerfile's build and start steps, as shell

The Dockerfile is parsed by BuildKit's own parser (the `dockerfile` package);
docker-compose.yml by the validating `compose_spec` parser after YAML merge
keys (`<<`) are resolved, as docker compose does. The monitoring services'
files (deploy/prometheus, deploy/grafana) are checked against the compose
file: every replica scraped on the port it serves /metrics on, every mounted
file present, the dashboards' datasource provisioned. `plan` prints shell
assignments that scripts/check-ops.sh uses to run the Dockerfile's exact build
and start commands outside Docker.
"""

import copy
import json
import os
import re
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


def is_copy_context(ins):
    """`COPY . .`: the whole build context."""
    return ins.cmd.upper() == "COPY" and not ins.flags and list(ins.value) == [".", "."]


def split_at_context(stage):
    """A stage's RUN commands before and after it copies in the whole context."""
    before, after, seen = [], [], False
    for ins in stage[2]:
        if is_copy_context(ins):
            seen = True
        elif ins.cmd.upper() == "RUN":
            (after if seen else before).append(ins.value[0])
    return before, after


def toolchain_channel():
    try:
        with open("rust-toolchain.toml") as f:
            m = re.search(r'^channel\s*=\s*"([^"]+)"', f.read(), re.M)
        return m.group(1) if m else None
    except OSError:
        return None


def check_dockerfile(problems):
    st = stages()
    names = [s[0] for s in st]
    for want in ("web", "chef", "planner", "builder"):
        if want not in names:
            problems.append(f"Dockerfile: no stage named {want!r} (stages: {names})")
    by_name = {s[0]: s for s in st if s[0]}
    web = by_name.get("web")
    if web:
        node = re.fullmatch(r"node:(\d+)\.\d+\.\d+-[a-z0-9-]+(@sha256:[0-9a-f]{64})?", web[1])
        if not node:
            problems.append(f"Dockerfile: the web stage's base {web[1]!r} is not a pinned node:X.Y.Z-<variant> tag")
        elif int(node.group(1)) < 24 or int(node.group(1)) % 2:
            problems.append(f"Dockerfile: the web stage's Node ({web[1]}) is not a maintained LTS (24 or a later even release)")
    chef = by_name.get("chef")
    channel = toolchain_channel()
    if chef and channel and not chef[1].startswith(f"rust:{channel}-"):
        problems.append(f"Dockerfile: the chef stage's base {chef[1]!r} is not the rust-toolchain.toml channel ({channel})")
    if chef and not any("cargo install cargo-chef" in i.value[0] and "--locked" in i.value[0] for i in instructions(chef, "RUN")):
        problems.append("Dockerfile: the chef stage does not `cargo install cargo-chef --locked`")
    for name in ("planner", "builder"):
        if name in by_name and by_name[name][1] != "chef":
            problems.append(f"Dockerfile: the {name} stage is not built FROM chef")
    if "planner" in by_name and not any("cargo chef prepare" in r for r in split_at_context(by_name["planner"])[1]):
        problems.append("Dockerfile: the planner stage does not run `cargo chef prepare` on the context")
    if "builder" in by_name:
        before, after = split_at_context(by_name["builder"])
        if not any("cargo chef cook" in r and "--release" in r and "--locked" in r for r in before):
            problems.append("Dockerfile: the builder does not `cargo chef cook --release --locked` before copying the source")
        if not any("cargo build --release --locked" in r for r in after):
            problems.append("Dockerfile: the builder does not `cargo build --release --locked` after copying the source")
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


COMPOSE = "docker-compose.yml"


def read_text(path):
    with open(path) as f:
        return f.read()


def load_compose(path=COMPOSE, read=read_text):
    return yaml.safe_load(read(path))  # resolves the << merge keys


def check_compose(problems, data, path=COMPOSE, read=read_text, report=True):
    try:
        spec = compose_spec.PyCompose.from_json(json.dumps(data))
    except ValueError as err:
        problems.append(f"{path}: not a valid Compose file: {err}")
        return
    services = spec.to_dict()["services"]
    for want in ("postgres", "redis", "minio", "tidings-1", "tidings-2", "proxy"):
        if want not in services:
            problems.append(f"{path}: no service {want!r}")
    for name, svc in services.items():
        ports = svc.get("ports") or []
        if name not in ("proxy", "grafana") and ports:
            problems.append(f"{path}: {name} publishes ports; only the proxy (and Grafana, on loopback) should")
        if name in ("postgres", "redis", "minio", "prometheus", "grafana") and not svc.get("healthcheck"):
            problems.append(f"{path}: {name} has no healthcheck")
        image = svc.get("image") or ""
        if not svc.get("build") and not re.search(r":[^/:@]+$", image) and "@sha256:" not in image:
            problems.append(f"{path}: {name}'s image {image!r} has no tag")
        elif image.endswith(":latest"):
            problems.append(f"{path}: {name}'s image {image!r} is not pinned (latest)")
        for volume in svc.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")) and not exists(source, read):
                problems.append(f"{path}: {name} mounts {source}, which does not exist")
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
        # Files: one bucket for all replicas, or a file uploaded through one
        # is not there for the other.
        if not str(env.get("FILE_STORE_URL", "")).startswith("s3://"):
            problems.append(
                f"{path}: {replica} does not set FILE_STORE_URL to an s3:// bucket: each replica "
                "would keep its uploads in its own data dir"
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
    check_monitoring(problems, services, path, read)
    if report:
        print(f"{path}: valid; services: {', '.join(sorted(services))}")


def exists(path, read):
    """A file or folder of the checkout (or one the selftest put in place)."""
    if getattr(read, "missing", None) and os.path.normpath(path) in read.missing:
        return False
    return os.path.exists(path)


# Prometheus and Grafana: pinned to a release (not a moving major tag), since
# their configuration formats change between releases.
PINNED = re.compile(r":v?\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?$")
PROMETHEUS_CONFIG = "deploy/prometheus/prometheus.yml"
DATASOURCES = "deploy/grafana/provisioning/datasources"
DASHBOARD_PROVIDERS = "deploy/grafana/provisioning/dashboards"
DASHBOARDS = "deploy/grafana/dashboards"


def replicas(services):
    """The Tidings replicas: the services built from the Dockerfile."""
    return sorted(name for name, svc in services.items() if svc.get("build"))


def metrics_port(svc):
    """The port a replica serves /metrics on: METRICS_ADDR's, else LISTEN_ADDR's."""
    env = svc.get("environment") or {}
    addr = env.get("METRICS_ADDR") or env.get("LISTEN_ADDR") or "0.0.0.0:8080"
    return str(addr).rsplit(":", 1)[-1]


def mounts(svc):
    """{container path: host path} of a service's bind mounts."""
    out = {}
    for volume in svc.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            if len(parts) >= 2 and parts[0].startswith((".", "/")):
                out[parts[1]] = os.path.normpath(parts[0])
        elif volume.get("type") == "bind":
            out[volume["target"]] = os.path.normpath(volume["source"])
    return out


def load_yaml(problems, file, read):
    try:
        return yaml.safe_load(read(file))
    except (OSError, yaml.YAMLError) as err:
        problems.append(f"{file}: {err}")
        return None


def yaml_files(folder, read):
    if not os.path.isdir(folder):
        return []
    return sorted(
        os.path.join(folder, f) for f in os.listdir(folder) if f.endswith((".yml", ".yaml"))
    )


def check_monitoring(problems, services, path, read):
    for name in ("prometheus", "grafana"):
        svc = services.get(name)
        if svc is None:
            problems.append(f"{path}: no service {name!r}")
            continue
        image = svc.get("image") or ""
        if not PINNED.search(image):
            problems.append(f"{path}: {name}'s image {image!r} is not pinned to a release (name:X.Y.Z)")
    prometheus = services.get("prometheus") or {}
    grafana = services.get("grafana") or {}

    # Prometheus scrapes every replica where it serves /metrics.
    if mounts(prometheus).get("/etc/prometheus/prometheus.yml") != os.path.normpath(PROMETHEUS_CONFIG):
        problems.append(f"{path}: prometheus does not mount {PROMETHEUS_CONFIG} as /etc/prometheus/prometheus.yml")
    config = load_yaml(problems, PROMETHEUS_CONFIG, read) or {}
    scraped = set()
    for job in config.get("scrape_configs") or []:
        if job.get("metrics_path", "/metrics") != "/metrics":
            continue
        for static in job.get("static_configs") or []:
            scraped.update(static.get("targets") or [])
    for replica in replicas(services):
        target = f"{replica}:{metrics_port(services[replica])}"
        if target not in scraped:
            problems.append(f"{PROMETHEUS_CONFIG}: does not scrape {target} (replica {replica}'s /metrics)")
    ports = {metrics_port(services[r]) for r in replicas(services)}
    listen = {str((services[r].get("environment") or {}).get("LISTEN_ADDR", "0.0.0.0:8080")).rsplit(":", 1)[-1] for r in replicas(services)}
    if ports & listen:
        problems.append(
            f"{path}: the replicas serve /metrics on their public port (no METRICS_ADDR): "
            "the proxy would publish it"
        )

    # Grafana: its admin password from the environment, its files mounted.
    env = grafana.get("environment") or {}
    if "${GRAFANA_ADMIN_PASSWORD" not in str(env.get("GF_SECURITY_ADMIN_PASSWORD", "")):
        problems.append(f"{path}: grafana's GF_SECURITY_ADMIN_PASSWORD does not come from $GRAFANA_ADMIN_PASSWORD")
    for port in grafana.get("ports") or []:
        if not str(port).startswith("127.0.0.1:"):
            problems.append(f"{path}: grafana publishes {port} beyond the loopback interface")
    graf_mounts = mounts(grafana)
    if graf_mounts.get("/etc/grafana/provisioning") != os.path.normpath("deploy/grafana/provisioning"):
        problems.append(f"{path}: grafana does not mount deploy/grafana/provisioning at /etc/grafana/provisioning")
    uids = set()
    for file in yaml_files(DATASOURCES, read):
        for ds in (load_yaml(problems, file, read) or {}).get("datasources") or []:
            if ds.get("type") == "prometheus":
                if ds.get("url") != "http://prometheus:9090":
                    problems.append(f"{file}: datasource {ds.get('name')!r} is not http://prometheus:9090")
                uids.add(ds.get("uid"))
    if not uids:
        problems.append(f"{DATASOURCES}: no Prometheus datasource is provisioned")
    provided = []
    for file in yaml_files(DASHBOARD_PROVIDERS, read):
        for provider in (load_yaml(problems, file, read) or {}).get("providers") or []:
            folder = (provider.get("options") or {}).get("path", "")
            host = graf_mounts.get(folder)
            if host is None:
                problems.append(f"{file}: provider {provider.get('name')!r} reads {folder}, which grafana does not mount")
            else:
                provided.append(host)
    if os.path.normpath(DASHBOARDS) not in provided:
        problems.append(f"{DASHBOARD_PROVIDERS}: no provider loads {DASHBOARDS}")
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        folder, _, name = str(home).rpartition("/")
        if folder not in graf_mounts or not exists(os.path.join(graf_mounts[folder], name), read):
            problems.append(f"{path}: grafana's home dashboard {home} is not a mounted file")
    dashboards = [
        f
        for f in (sorted(os.listdir(DASHBOARDS)) if os.path.isdir(DASHBOARDS) else [])
        if f.endswith(".json") and exists(os.path.join(DASHBOARDS, f), read)
    ]
    if not dashboards:
        problems.append(f"{DASHBOARDS}: no dashboard")
    for name in dashboards:
        file = os.path.join(DASHBOARDS, name)
        try:
            dash = json.loads(read(file))
        except (OSError, ValueError) as err:
            problems.append(f"{file}: not JSON: {err}")
            continue
        for ds in datasources_in(dash):
            if ds.get("type") == "prometheus" and ds.get("uid") not in uids:
                problems.append(f"{file}: a panel uses datasource uid {ds.get('uid')!r}, not a provisioned one ({sorted(uids)})")


def datasources_in(node):
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict):
            yield ds
        for value in node.values():
            yield from datasources_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasources_in(value)


def plan():
    """Shell assignments: the build and start steps of the Dockerfile."""
    all_stages = stages()
    web = next(s for s in all_stages if s[0] == "web")
    builder = next(s for s in all_stages if s[0] == "builder")
    final = all_stages[-1]
    chef = next(s for s in all_stages if s[0] == "chef")
    planner = next(s for s in all_stages if s[0] == "planner")
    arr = lambda items: "(" + " ".join(shlex.quote(x) for x in items) + ")"
    lines = []
    lines.append("WEB_NODE=" + shlex.quote(web[1].split(":")[1].split("-")[0]))
    lines.append("WEB_RUN=" + arr(i.value[0] for i in instructions(web, "RUN")))
    # The chef stage's files copied from the context (rust-toolchain.toml).
    lines.append("CHEF_COPY=" + arr(v for i in instructions(chef, "COPY") if not i.flags for v in list(i.value)[:-1]))
    lines.append("CHEF_RUN=" + arr(i.value[0] for i in instructions(chef, "RUN")))
    lines.append("PLANNER_RUN=" + arr(split_at_context(planner)[1]))
    # COPY --from=planner <file> <dest> into the builder, before the context.
    from_planner = [list(i.value) for i in instructions(builder, "COPY") if any(f == "--from=planner" for f in i.flags)]
    lines.append("BUILDER_FROM_PLANNER=" + arr(v[0] for v in from_planner))
    before, after = split_at_context(builder)
    lines.append("BUILDER_ENV=" + arr(f"{k}={v}" for k, v in env_of(builder).items()))
    lines.append("BUILDER_COOK_RUN=" + arr(before))
    lines.append("BUILDER_RUN=" + arr(after))
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


def reader(overrides, missing=()):
    """read_text, with some files' content replaced (or gone)."""

    def read(path):
        path = os.path.normpath(path)
        if path in read.missing:
            raise FileNotFoundError(path)
        return overrides[path] if path in overrides else read_text(path)

    read.missing = {os.path.normpath(m) for m in missing}
    return read


def selftest():
    """Each known-bad change to the deploy files must make `check` fail with
    the problem it is about; the files as they are must pass."""

    def compose_without(edit):
        data = copy.deepcopy(load_compose())
        edit(data)
        return data

    def drop_env(key, where="x-tidings"):
        def edit(data):
            for svc in [data.get(where)] + list(data["services"].values()):
                if isinstance(svc, dict):
                    (svc.get("environment") or {}).pop(key, None)
        return edit

    def set_image(name, image):
        def edit(data):
            data["services"][name]["image"] = image
        return edit

    def drop_service(name):
        def edit(data):
            data["services"].pop(name)
        return edit

    prom = read_text(PROMETHEUS_CONFIG)
    cases = [
        ("TRUST_PROXY missing from the tidings service", compose_without(drop_env("TRUST_PROXY")), {}, (), "TRUST_PROXY"),
        ("FILE_STORE_URL missing (files per replica)", compose_without(drop_env("FILE_STORE_URL")), {}, (), "FILE_STORE_URL"),
        ("METRICS_ADDR missing (metrics on the public port)", compose_without(drop_env("METRICS_ADDR")), {}, (), "public port"),
        ("prometheus image unpinned", compose_without(set_image("prometheus", "prom/prometheus:latest")), {}, (), "not pinned"),
        ("grafana image on a major tag", compose_without(set_image("grafana", "grafana/grafana:13")), {}, (), "not pinned"),
        ("no grafana service", compose_without(drop_service("grafana")), {}, (), "'grafana'"),
        ("a replica not scraped", load_compose(), {PROMETHEUS_CONFIG: prom.replace("tidings-2:9100", "tidings-9:9100")}, (), "tidings-2:9100"),
        ("the Prometheus config missing", load_compose(), {}, (PROMETHEUS_CONFIG,), "deploy/prometheus/prometheus.yml"),
        ("the dashboard missing", load_compose(), {}, (os.path.join(DASHBOARDS, "tidings.json"),), "home dashboard"),
    ]
    baseline = []
    check_compose(baseline, load_compose(), report=False)
    if baseline:
        raise SystemExit("selftest: the files as they are do not pass: " + "; ".join(baseline))
    failed = []
    for what, data, overrides, missing, expect in cases:
        problems = []
        check_compose(problems, data, read=reader(overrides, missing), report=False)
        if not any(expect in p for p in problems):
            failed.append(what)
            print(f"selftest FAIL: {what}: check did not fail (problems: {problems})")
        else:
            print(f"selftest ok: {what}: {next(p for p in problems if expect in p)}")
    if failed:
        sys.exit(1)


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "check"
    if what == "plan":
        plan()
        return
    if what == "selftest":
        selftest()
        return
    problems = []
    st = check_dockerfile(problems)
    print(f"Dockerfile: parsed; stages: {', '.join(s[0] or s[1] for s in st)}")
    check_compose(problems, load_compose())
    for p in problems:
        print(f"FAIL {p}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
