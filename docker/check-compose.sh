#!/usr/bin/env bash
# Checks docker/compose.yml the way Compose reads it: syntax, schema, variable interpolation
# (with the values of docker/.env.example) and references between services, volumes and networks.
#
# With Compose v2 (`docker compose` or a v2 `docker-compose`) the file is checked as it is. Without
# it, Debian's docker-compose 1.29 is installed if missing (apt-get, as root) and checks a copy in
# which the two Compose v2 constructs it predates are spelled the v1 way: the top-level `name:`
# becomes `-p vpn-shop`, and `env_file: [{path: .env, required: false}]` becomes `env_file: [.env]`
# (with .env.example copied to .env). Everything else is checked as written.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

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

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
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
