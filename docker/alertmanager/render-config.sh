#!/bin/sh
# Writes Alertmanager's configuration to standard output from the ALERTMANAGER_* variables of
# docker/.env: Alertmanager expands no environment variables in its configuration, so its
# container runs this at start into a file in memory (compose.yml), then starts Alertmanager on it.
# The manual: docs/src/production.md, "Alerts to Telegram and email".
#
# Every alert goes to one receiver, `admins`: a Telegram message to each chat of
# ALERTMANAGER_TELEGRAM_CHAT_IDS (through the bot of ALERTMANAGER_TELEGRAM_BOT_TOKEN) and/or an email
# to ALERTMANAGER_EMAIL_TO. Alerts of one rule are grouped into one message; a firing alert is
# repeated every 12 h (critical: 2 h) and its end is reported once. With neither channel set,
# Alertmanager runs and sends nothing (the alerts show on its page and in Prometheus).
# A wrong value stops here with a message naming the variable, before Alertmanager starts.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

fail() {
    echo "render-config.sh: $*" >&2
    exit 1
}

# A YAML single-quoted scalar: any text, `'` doubled.
quote() {
    printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"
}

token=${ALERTMANAGER_TELEGRAM_BOT_TOKEN:-}
chats=$(printf '%s' "${ALERTMANAGER_TELEGRAM_CHAT_IDS:-}" | tr ',' ' ')
email_to=${ALERTMANAGER_EMAIL_TO:-}
email_from=${ALERTMANAGER_EMAIL_FROM:-}
smarthost=${ALERTMANAGER_SMTP_SMARTHOST:-}
smtp_username=${ALERTMANAGER_SMTP_USERNAME:-}
smtp_password=${ALERTMANAGER_SMTP_PASSWORD:-}
require_tls=${ALERTMANAGER_SMTP_REQUIRE_TLS:-true}

if [ -n "$token" ] && [ -z "$chats" ]; then
    fail "ALERTMANAGER_TELEGRAM_BOT_TOKEN is set: set ALERTMANAGER_TELEGRAM_CHAT_IDS too"
fi
if [ -z "$token" ] && [ -n "$chats" ]; then
    fail "ALERTMANAGER_TELEGRAM_CHAT_IDS is set: set ALERTMANAGER_TELEGRAM_BOT_TOKEN too"
fi
case "$token" in
    '' | [0-9]*:?*) ;;
    *) fail "ALERTMANAGER_TELEGRAM_BOT_TOKEN is not a bot token (digits:letters, from @BotFather)" ;;
esac
for chat in $chats; do
    case "$chat" in
        '' | *[!0-9-]* | ?*-* | -) fail "ALERTMANAGER_TELEGRAM_CHAT_IDS: $chat is not a chat id (a number, groups negative)" ;;
    esac
done
if [ -n "$email_to" ]; then
    [ -n "$email_from" ] || fail "ALERTMANAGER_EMAIL_TO is set: set ALERTMANAGER_EMAIL_FROM too"
    case "$smarthost" in
        ?*:[0-9]*) ;;
        *) fail "ALERTMANAGER_EMAIL_TO is set: set ALERTMANAGER_SMTP_SMARTHOST to host:port (465: TLS, 587: STARTTLS)" ;;
    esac
fi
case "$require_tls" in
    true | false) ;;
    *) fail "ALERTMANAGER_SMTP_REQUIRE_TLS is true or false, not $require_tls" ;;
esac

cat <<YAML
# Rendered by docker/alertmanager/render-config.sh at the start of the container: edit that.
route:
  receiver: admins
  # One message per rule, listing its alerts (e.g. dead jobs of several kinds).
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 12h
  routes:
    - matchers: ['severity="critical"']
      receiver: admins
      repeat_interval: 2h

inhibit_rules:
  # The app is down: its other alerts only repeat that.
  - source_matchers: ['alertname="VpnShopDown"']
    target_matchers: ['alertname!="VpnShopDown"']
  # The panel is down: the failing syncs are that.
  - source_matchers: ['alertname="VpnShopPanelUnreachable"']
    target_matchers: ['alertname="VpnShopSyncFailing"']

templates:
  - $(quote "$here/*.tmpl")

receivers:
  - name: admins
YAML

if [ -n "$chats" ]; then
    echo "    telegram_configs:"
    for chat in $chats; do
        cat <<YAML
      - bot_token: $(quote "$token")
        chat_id: $chat
        parse_mode: HTML
        message: '{{ template "vpn_shop.telegram" . }}'
        send_resolved: true
YAML
    done
fi
if [ -n "$email_to" ]; then
    cat <<YAML
    email_configs:
      - to: $(quote "$email_to")
        from: $(quote "$email_from")
        smarthost: $(quote "$smarthost")
        require_tls: $require_tls
        send_resolved: true
YAML
    if [ -n "$smtp_username" ]; then
        echo "        auth_username: $(quote "$smtp_username")"
        echo "        auth_password: $(quote "$smtp_password")"
    fi
fi
if [ -z "$chats" ] && [ -z "$email_to" ]; then
    echo "render-config.sh: no receiver set (ALERTMANAGER_TELEGRAM_CHAT_IDS, ALERTMANAGER_EMAIL_TO): alerts are not sent" >&2
fi
