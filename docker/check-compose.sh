#!/usr/bin/env bash
# Checks docker/compose.yml the way Compose reads it: syntax, schema, variable interpolation
# (with the values of docker/.env.example) and references between services, volumes and networks.
# First, the monitoring: `promtool check rules` on alerts.yml, `promtool check config` on
# prometheus.yml, and `amtool check-config` on the Alertmanager configuration render-config.sh
# writes, with sample Telegram and email receivers and with the ALERTMANAGER_* lines of
# docker/.env (when it exists). promtool and amtool come from the machine (Debian packages
# prometheus, prometheus-alertmanager), else from the images compose.yml runs, else apt-get.
#
# With Compose v2 (`docker compose` or a v2 `docker-compose`) the file is checked as it is. Without
# it, Debian's docker-compose 1.29 is installed if missing (apt-get, as root) and checks a copy in
# which the two Compose v2 constructs it predates are spelled the v1 way: the top-level `name:`
# becomes `-p vpn-shop`, and `env_file: [{path: .env, required: false}]` becomes `env_file: [.env]`
# (with .env.example copied to .env). Everything else is checked as written.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

image_of() { sed -n "s|^ *image: \(prom/$1:.*\)\$|\1|p" "$here/compose.yml"; }
if command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; then
    tools=local
elif docker version >/dev/null 2>&1; then
    tools=docker
else
    echo "no promtool/amtool and no Docker: installing Debian's prometheus and prometheus-alertmanager"
    if ! apt-cache show prometheus-alertmanager >/dev/null 2>&1; then
        apt-get update -qq
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        prometheus prometheus-alertmanager >/dev/null
    tools=local
fi
# promtool with docker/ at $dir.
if [ "$tools" = local ]; then
    dir="$here"
    promtool=(promtool)
else
    dir=/etc/prometheus
    promtool=(docker run --rm -v "$here:$dir:ro" --entrypoint promtool "$(image_of prometheus)")
fi
"${promtool[@]}" check rules "$dir/alerts.yml"
"${promtool[@]}" check config --syntax-only "$dir/prometheus.yml"

# Renders the Alertmanager configuration with the variables given (NAME=value…) and checks it.
check_alertmanager() {
    local what="$1"
    shift
    echo "Alertmanager configuration with $what:"
    if [ "$tools" = local ]; then
        env -i PATH="$PATH" "$@" sh "$here/alertmanager/render-config.sh" >"$work/alertmanager.yml"
        amtool check-config "$work/alertmanager.yml"
    else
        local vars=()
        for var in "$@"; do vars+=(-e "$var"); done
        docker run --rm "${vars[@]}" -v "$here/alertmanager:/etc/alertmanager:ro" \
            --entrypoint /bin/sh "$(image_of alertmanager)" \
            -c 'sh /etc/alertmanager/render-config.sh >/tmp/alertmanager.yml &&
                amtool check-config /tmp/alertmanager.yml'
    fi
}
check_alertmanager "sample Telegram and email receivers" \
    ALERTMANAGER_TELEGRAM_BOT_TOKEN=123456789:AAEhBP0av18e3ZmDDs4kWXMhvmCtwcg9Qh8 \
    ALERTMANAGER_TELEGRAM_CHAT_IDS=7001,-1001234567890 \
    ALERTMANAGER_EMAIL_TO=owner@example.com ALERTMANAGER_EMAIL_FROM=alerts@example.com \
    ALERTMANAGER_SMTP_SMARTHOST=smtp.example.com:587 \
    ALERTMANAGER_SMTP_USERNAME=alerts ALERTMANAGER_SMTP_PASSWORD=secret
if [ -f "$here/.env" ]; then
    mapfile -t settings < <(grep '^ALERTMANAGER_[A-Z_]*=' "$here/.env" || true)
    check_alertmanager "the receivers of docker/.env" "${settings[@]}"
fi
echo "docker/alerts.yml, docker/prometheus.yml, docker/alertmanager/: valid"

if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1 \
    && docker-compose version --short 2>/dev/null | grep -q '^v\?2'; then
    compose=(docker-compose)
else
    compose=()
fi

if [ ${#compose[@]} -gt 0 ]; then
    echo "checking with ${compose[*]} $("${compose[@]}" version --short)"
    "${compose[@]}" -f "$here/compose.yml" --env-file "$here/.env.example" config --quiet
    echo "docker/compose.yml: valid"
    exit 0
fi

if ! command -v docker-compose >/dev/null 2>&1; then
    echo "no Compose found: installing Debian's docker-compose"
    if ! apt-cache show docker-compose >/dev/null 2>&1; then
        apt-get update -qq
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi
echo "checking with docker-compose $(docker-compose version --short) (Compose v1; see the header)"

cp -r "$here/." "$work/"
cp "$here/.env.example" "$work/.env"
sed -i -e '/^name: vpn-shop$/d' \
    -e 's/^      - path: \.env$/      - .env/' \
    -e '/^        required: false$/d' "$work/compose.yml"
# The translation must have found what it translates, or this check would test another file.
if grep -qE '^name:|path: \.env|required: false' "$work/compose.yml" \
    || ! grep -q '^name: vpn-shop$' "$here/compose.yml"; then
    echo "docker/check-compose.sh: compose.yml changed shape; update the v1 translation" >&2
    exit 1
fi
(cd "$work" && docker-compose -p vpn-shop -f compose.yml config --quiet)
echo "docker/compose.yml: valid"
