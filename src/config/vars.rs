//! The table of every configuration variable: name, default, example and meaning. `check-config`
//! prints them in this order, and [`reference_markdown`] renders the per-variable reference of the
//! manual (docs/src/configuration-reference.md; a test keeps that file equal to it).

/// One configuration variable: its name, default, an example of a good value and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    pub name: &'static str,
    /// `None`: unset by default (the feature it enables is off, or the value is derived).
    pub default: Option<&'static str>,
    pub example: &'static str,
    pub secret: bool,
    pub help: &'static str,
}

const fn var(
    name: &'static str,
    default: Option<&'static str>,
    example: &'static str,
    help: &'static str,
) -> Var {
    Var {
        name,
        default,
        example,
        secret: false,
        help,
    }
}

const fn secret(name: &'static str, example: &'static str, help: &'static str) -> Var {
    Var {
        name,
        default: None,
        example,
        secret: true,
        help,
    }
}

/// Settings that were renamed, as (deprecated name, current name): the deprecated name is still
/// accepted (`check-config` and the log at start say so); both set to different values is
/// refused at start. The panel settings shared by every panel were named `MARZBAN_*` before
/// other panels existed.
pub const RENAMED: &[(&str, &str)] = &[
    ("MARZBAN_USERNAME_PREFIX", "PANEL_USERNAME_PREFIX"),
    ("MARZBAN_WRITE_CONCURRENCY", "PANEL_WRITE_CONCURRENCY"),
    ("MARZBAN_TIMEOUT", "PANEL_TIMEOUT"),
    ("MARZBAN_PAGE_SIZE", "PANEL_PAGE_SIZE"),
    (
        "MARZBAN_SYNC_SUBSCRIPTIONS_INTERVAL",
        "PANEL_SYNC_SUBSCRIPTIONS_INTERVAL",
    ),
    ("MARZBAN_SYNC_STATUS_INTERVAL", "PANEL_SYNC_STATUS_INTERVAL"),
    (
        "MARZBAN_SYNC_TRAFFIC_INTERVAL",
        "PANEL_SYNC_TRAFFIC_INTERVAL",
    ),
    ("MARZBAN_STATS_INTERVAL", "PANEL_STATS_INTERVAL"),
    ("MARZBAN_CLEANUP_INTERVAL", "PANEL_CLEANUP_INTERVAL"),
    ("MARZBAN_CLEANUP_AFTER_DAYS", "PANEL_CLEANUP_AFTER_DAYS"),
    ("MARZBAN_CLEANUP_ACTION", "PANEL_CLEANUP_ACTION"),
];

/// The client apps suggested by /status when CLIENT_APPS is unset.
pub const DEFAULT_CLIENT_APPS: &str = "Android=v2rayNG https://github.com/2dust/v2rayNG/releases;iOS=Streisand https://apps.apple.com/app/id6450534064;Windows=Hiddify https://github.com/hiddify/hiddify-app/releases;macOS=Hiddify https://github.com/hiddify/hiddify-app/releases;Linux=Hiddify https://github.com/hiddify/hiddify-app/releases";

/// Every setting the program reads, grouped as [`SECTIONS`] says. The manual's configuration
/// reference is rendered from this table ([`reference_markdown`]).
pub const VARS: &[Var] = &[
    secret(
        "DATABASE_URL",
        "postgres://vpn_shop:password@127.0.0.1:5432/vpn_shop",
        "PostgreSQL to use. Unset: `serve` starts and owns a private cluster in DATA_DIR/postgres.",
    ),
    var(
        "DATABASE_POOL_SIZE",
        Some("16"),
        "16",
        "Maximum connections in the pool.",
    ),
    var(
        "DATABASE_CONNECT_TIMEOUT",
        Some("5s"),
        "5s",
        "How long a request waits for a pooled connection before it fails with 503.",
    ),
    var(
        "DATA_DIR",
        Some("./data"),
        "/var/lib/vpn-shop",
        "Where the program keeps its files: the embedded PostgreSQL, the generated JWT secret.",
    ),
    var(
        "EMBEDDED_POSTGRES_FALLBACK_DIR",
        Some("/var/lib/vpn-shop"),
        "/var/lib/vpn-shop",
        "Run as root, where a new embedded PostgreSQL cluster goes when the `postgres` user cannot reach DATA_DIR (e.g. under /root): a directory named after DATA_DIR (its name and a hash of its path), owned by `postgres`. DATA_DIR keeps the other files.",
    ),
    var(
        "HTTP_BIND",
        Some("127.0.0.1:8080"),
        "0.0.0.0:8080",
        "Address of the HTTP server (admin API, webhooks, /health, /ready, /metrics, /docs).",
    ),
    var(
        "PUBLIC_BASE_URL",
        None,
        "https://shop.example.com",
        "Public URL of the HTTP server, used for webhook URLs. Default: http://HTTP_BIND.",
    ),
    secret(
        "JWT_SECRET",
        "a-random-string-of-at-least-32-characters",
        "Key that signs admin API tokens (≥ 32 characters). Unset: generated once and kept in DATA_DIR/jwt_secret.",
    ),
    var(
        "JWT_TTL",
        Some("12h"),
        "12h",
        "Lifetime of an admin API access token.",
    ),
    var(
        "API_RATE_LIMIT",
        Some("20/s"),
        "20/s",
        "Admin API requests allowed per second for each token and for each client address (per replica), beyond which it answers 429 with Retry-After; `off` disables it.",
    ),
    var(
        "API_RATE_BURST",
        Some("40"),
        "40",
        "Admin API requests allowed at once before API_RATE_LIMIT applies (the bucket size).",
    ),
    var(
        "CORS_ORIGINS",
        None,
        "https://admin.example.com",
        "Web origins allowed to call the admin API from a browser, comma-separated. Unset: CORS is off (browsers block other origins).",
    ),
    var(
        "WEBHOOK_REFUSAL_LIMIT",
        Some("20/m"),
        "20/m",
        "Refused webhook requests (unsigned, forged, malformed) one client address may make, N at once and then N per period (IPv6: per /64); beyond that its webhooks get 429 with Retry-After, unread. Providers are never refused, so never limited. `off` disables it.",
    ),
    secret(
        "METRICS_TOKEN",
        "a-random-string-of-at-least-32-characters",
        "When set, GET /metrics needs `Authorization: Bearer <this>` (≥ 32 characters, no spaces) and answers 401 otherwise. Unset: /metrics is open to anyone who reaches the port.",
    ),
    var(
        "LOG_FORMAT",
        Some("pretty"),
        "json",
        "`pretty` (human-readable lines) or `json` (one JSON object per line).",
    ),
    var(
        "RUST_LOG",
        Some("info"),
        "info,vpn_shop=debug",
        "Log filter (tracing-subscriber EnvFilter syntax).",
    ),
    var(
        "JOB_CONCURRENCY",
        Some("8"),
        "8",
        "Jobs one replica runs at the same time.",
    ),
    var(
        "JOB_MAX_ATTEMPTS",
        Some("20"),
        "20",
        "Attempts before a job is marked dead (visible to admins, retried only by hand).",
    ),
    var(
        "JOB_POLL_INTERVAL",
        Some("5s"),
        "5s",
        "Fallback polling of the job queue; new jobs also wake the runner at once (LISTEN/NOTIFY).",
    ),
    var(
        "JOB_LEASE",
        Some("10m"),
        "10m",
        "One attempt may run for 90 % of this; a job whose worker died is taken over by another worker after it.",
    ),
    var(
        "JOB_BACKOFF_BASE",
        Some("5s"),
        "5s",
        "Delay after the first failed attempt; doubles with each attempt, with jitter.",
    ),
    var(
        "JOB_BACKOFF_MAX",
        Some("1h"),
        "1h",
        "Longest delay between two attempts of a job.",
    ),
    var(
        "JOB_RETENTION",
        Some("7d"),
        "7d",
        "Finished jobs are deleted after this time (dead jobs are kept).",
    ),
    var(
        "SCHEDULER_TICK",
        Some("5s"),
        "5s",
        "How often the scheduler looks for due periodic tasks.",
    ),
    var(
        "MAINTENANCE_INTERVAL",
        Some("1h"),
        "1h",
        "Interval of the `maintenance` task (prunes finished jobs, login throttles, revoked tokens, seen updates, old payment events).",
    ),
    var(
        "BACKUP_INTERVAL",
        None,
        "24h",
        "Interval of the `backup` task, which writes a database backup to DATA_DIR/backups. Unset: no scheduled backups.",
    ),
    var(
        "BACKUP_KEEP",
        Some("7"),
        "7",
        "Scheduled backups kept in DATA_DIR/backups; older ones are deleted.",
    ),
    var(
        "BACKUP_TELEGRAM",
        Some("false"),
        "true",
        "Send each scheduled backup to the ADMIN_TELEGRAM_IDS through the bot (a backup over Telegram's 50 MB upload limit: a message saying where it is on the server). Needs TELEGRAM_BOT_TOKEN and ADMIN_TELEGRAM_IDS.",
    ),
    var(
        "WATCHDOG_INTERVAL",
        Some("5s"),
        "5s",
        "How often the watchdog checks that every actor is alive and re-spawns dead ones.",
    ),
    var(
        "SHUTDOWN_TIMEOUT",
        Some("30s"),
        "30s",
        "On SIGINT/SIGTERM, how long running requests and jobs may take to finish.",
    ),
    var(
        "PANEL_KIND",
        Some("marzban"),
        "pasarguard",
        "The panel the shop drives: `marzban` (0.8.4), `pasarguard` (5.1+) or `remnawave` (2.8 or 3.x). Only the settings of that panel are read; the PANEL_USERNAME_PREFIX … PANEL_CLEANUP_ACTION settings below apply to every panel.",
    ),
    var(
        "MARZBAN_URL",
        None,
        "https://panel.example.com:8000",
        "Base URL of the Marzban panel (without /api). Unset: provisioning and panel syncs are off; provision jobs wait in the queue.",
    ),
    var(
        "MARZBAN_USERNAME",
        None,
        "admin",
        "Panel admin the shop logs in as (a sudo admin, or a regular one that owns the shop's users). Required with MARZBAN_URL.",
    ),
    secret(
        "MARZBAN_PASSWORD",
        "panel-admin-password",
        "Password of MARZBAN_USERNAME. Required with MARZBAN_URL.",
    ),
    var(
        "MARZBAN_SUBSCRIPTION_BASE_URL",
        None,
        "https://sub.example.com",
        "Prefix for the relative subscription URLs the panel returns (when its XRAY_SUBSCRIPTION_URL_PREFIX is empty). Default: MARZBAN_URL.",
    ),
    var(
        "MARZBAN_PROXIES",
        Some("vless"),
        "vless,trojan",
        "Protocols of new panel users: a comma list, or a JSON object with settings such as {\"vless\":{\"flow\":\"xtls-rprx-vision\"}}.",
    ),
    var(
        "MARZBAN_INBOUNDS",
        None,
        "{\"vless\":[\"VLESS TCP REALITY\"]}",
        "Inbound tags per protocol for new users, as JSON. Unset, or a protocol not listed: all its inbounds.",
    ),
    var(
        "PASARGUARD_URL",
        None,
        "https://pasarguard.example.com:8000",
        "Base URL of the PasarGuard panel (without /api), with PANEL_KIND=pasarguard. Unset: provisioning and panel syncs are off.",
    ),
    secret(
        "PASARGUARD_API_KEY",
        "pg_key_6f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
        "API key of a PasarGuard admin (sent as X-Api-Key). When set, PASARGUARD_USERNAME and PASARGUARD_PASSWORD are not used.",
    ),
    var(
        "PASARGUARD_USERNAME",
        None,
        "shop",
        "PasarGuard admin the shop logs in as when PASARGUARD_API_KEY is unset (a database admin: env admins may not log in in production).",
    ),
    secret(
        "PASARGUARD_PASSWORD",
        "pasarguard-admin-password",
        "Password of PASARGUARD_USERNAME.",
    ),
    var(
        "PASARGUARD_GROUP_IDS",
        None,
        "1,3",
        "Groups new users join (ids of GET /api/groups), comma-separated; required with PASARGUARD_URL (a user without groups cannot connect).",
    ),
    var(
        "PASARGUARD_SUBSCRIPTION_BASE_URL",
        None,
        "https://sub.example.com",
        "Prefix for the relative subscription URLs PasarGuard returns (when its subscription URL prefix is empty). Default: PASARGUARD_URL.",
    ),
    var(
        "REMNAWAVE_URL",
        None,
        "https://remnawave.example.com",
        "Base URL of the Remnawave panel (without /api), with PANEL_KIND=remnawave; 2.8 and 3.x are supported, found out at start from GET /api/system/metadata. Unset: provisioning and panel syncs are off.",
    ),
    secret(
        "REMNAWAVE_TOKEN",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.signature",
        "API token made in the panel's API Tokens page (sent as a bearer token; admin logins are refused by Remnawave's API). Required with REMNAWAVE_URL.",
    ),
    var(
        "REMNAWAVE_SQUADS",
        None,
        "3c1e8a4b-2f6d-4e8a-9b1c-7d2e5f6a8b9c",
        "Internal squads new users join (uuids of GET /api/internal-squads), comma-separated; required with REMNAWAVE_URL (a user without squads cannot connect).",
    ),
    secret(
        "REMNAWAVE_EXTRA_HEADERS",
        "{\"X-Api-Key\":\"caddy-api-key\"}",
        "Headers sent on every call to the panel, as a JSON object, for a proxy that guards it (caddy-with-auth's X-Api-Key, a gate cookie). X-Forwarded-For: 127.0.0.1 and X-Forwarded-Proto: https are always sent (Remnawave drops requests without them) unless set here.",
    ),
    secret(
        "REMNAWAVE_WEBHOOK_SECRET",
        "Xq7vK2mP9zR4tN8wB3cF6hJ1lD5sG0aY",
        "The panel's WEBHOOK_SECRET_HEADER. When set, POST /webhooks/panel takes Remnawave's user events (signed with it in X-Remnawave-Signature) and brings the user up to date at once instead of at the next sync. Unset: the webhook answers 404.",
    ),
    var(
        "REMNAWAVE_DEVICE_LIMIT",
        None,
        "3",
        "Devices (HWID) a new user may connect, sent as hwidDeviceLimit (0: no limit for that user). Unset: the panel's fallback limit applies.",
    ),
    var(
        "PANEL_USERNAME_PREFIX",
        Some("vpnshop_"),
        "shop1_",
        "Panel username = this prefix + the Telegram id (a-z, 0-9, _; at most 16 characters). The syncs never touch panel users without it.",
    ),
    var(
        "PANEL_WRITE_CONCURRENCY",
        Some("4"),
        "4",
        "Panel writes (create, modify, delete) one replica runs at the same time.",
    ),
    var(
        "PANEL_TIMEOUT",
        Some("10s"),
        "10s",
        "Timeout of one panel request.",
    ),
    var(
        "PANEL_PAGE_SIZE",
        Some("100"),
        "100",
        "Users per page when the syncs list the panel's users.",
    ),
    var(
        "PANEL_SYNC_SUBSCRIPTIONS_INTERVAL",
        Some("2h"),
        "2h",
        "Interval of `panel_sync_subscriptions`: make expiry, data limit and status on the panel match the database.",
    ),
    var(
        "PANEL_SYNC_STATUS_INTERVAL",
        Some("1h"),
        "1h",
        "Interval of `panel_sync_status`: read every shop user's panel status, last online time and traffic.",
    ),
    var(
        "PANEL_SYNC_TRAFFIC_INTERVAL",
        Some("5m"),
        "5m",
        "Interval of `panel_sync_traffic`: read the traffic of active users and warn at 80 % and 100 % of their limit.",
    ),
    var(
        "PANEL_STATS_INTERVAL",
        Some("15m"),
        "15m",
        "Interval of `panel_stats`: record the panel's system stats (users by status, bandwidth, CPU, memory).",
    ),
    var(
        "PANEL_CLEANUP_INTERVAL",
        Some("7d"),
        "7d",
        "Interval of `panel_cleanup`: disable or delete panel users expired for longer than PANEL_CLEANUP_AFTER_DAYS.",
    ),
    var(
        "PANEL_CLEANUP_AFTER_DAYS",
        Some("30"),
        "30",
        "Days after expiry before `panel_cleanup` acts on a user.",
    ),
    var(
        "PANEL_CLEANUP_ACTION",
        Some("disable"),
        "delete",
        "`disable` or `delete` the panel users `panel_cleanup` finds (the shop keeps their records).",
    ),
    var(
        "PAID_UNPROVISIONED_AFTER",
        Some("5m"),
        "5m",
        "How long a paying user's running subscription may be missing, disabled or short on the panel before `paid_unprovisioned` counts it (gauge `vpn_shop_paid_unprovisioned`) and provisions again.",
    ),
    var(
        "PAID_UNPROVISIONED_INTERVAL",
        Some("1m"),
        "1m",
        "Interval of `paid_unprovisioned`, the check of paid access on the panel (when a panel is configured).",
    ),
    secret(
        "TELEGRAM_BOT_TOKEN",
        "123456789:AAEhBP0av18e3ZmDDs4kWXMhvmCtwcg9Qh8",
        "Bot token from @BotFather. Unset: the Telegram bot and Telegram notifications are off.",
    ),
    var(
        "TELEGRAM_API_URL",
        Some("https://api.telegram.org"),
        "http://127.0.0.1:8081",
        "Bot API server: the official one, or a self-hosted telegram-bot-api.",
    ),
    var(
        "TELEGRAM_MAX_RATE",
        Some("25"),
        "25",
        "Messages per second the shop sends, all replicas together (Telegram allows about 30; at most 1 per second goes to one chat).",
    ),
    var(
        "TELEGRAM_TIMEOUT",
        Some("15s"),
        "15s",
        "Timeout of one Bot API request.",
    ),
    var(
        "TELEGRAM_MODE",
        Some("polling"),
        "webhook",
        "`polling` (the bot asks Telegram for updates; one replica) or `webhook` (Telegram posts updates to PUBLIC_BASE_URL/webhooks/telegram; any number of replicas).",
    ),
    secret(
        "TELEGRAM_WEBHOOK_SECRET",
        "b3Jk1xQ9_random-secret-token-of-32-chars",
        "Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token with every webhook update: 32-256 characters of A-Z a-z 0-9 _ - (e.g. `openssl rand -hex 32`). Required with TELEGRAM_MODE=webhook.",
    ),
    var(
        "ADMIN_TELEGRAM_IDS",
        None,
        "123456789,987654321",
        "Telegram user ids (comma-separated) allowed to use the bot's admin commands (/admin, /stats, /user, /grant, /broadcast, /alerts); they get the admin alerts through the bot. Unset: nobody.",
    ),
    var(
        "TRIAL_DAYS",
        Some("7"),
        "3",
        "Length of the free trial, once per Telegram account. 0 turns the trial off.",
    ),
    var(
        "TRIAL_TRAFFIC_LIMIT",
        Some("unlimited"),
        "5GB",
        "Traffic of the free trial on the panel, in the panel's binary units (500MB, 5GB); `unlimited` or 0: no limit.",
    ),
    var(
        "SUPPORT_CONTACT",
        None,
        "@my_vpn_support",
        "Who subscribers write to for help (a @username, an email or a URL), shown by /help and /paysupport.",
    ),
    var(
        "SUPPORT_CHAT_ID",
        None,
        "-1001234567890",
        "The Telegram group (its id, negative) where subscribers' questions arrive and the team answers them by replying; with topics turned on, one topic per conversation. The bot must be an administrator of the group (with the right to manage topics). Unset: questions go to each of the ADMIN_TELEGRAM_IDS in their chat with the bot; with neither, the bot takes no questions.",
    ),
    var(
        "SUPPORT_SLA",
        Some("12h"),
        "4h",
        "How long a subscriber may wait for the first answer before the `VpnShopSupportWaiting` Prometheus alert fires (exported as `vpn_shop_support_sla_seconds`).",
    ),
    var(
        "WEBAPP_ENABLED",
        Some("false"),
        "true",
        "The bot opens the subscriber cabinet (`PUBLIC_BASE_URL`/app/) as a Telegram Mini App: its menu button (next to the message field) and an \"Open cabinet\" button in the main menu. Telegram opens Mini Apps over HTTPS only, so PUBLIC_BASE_URL must be an https:// URL.",
    ),
    var(
        "WEBAPP_AUTH_MAX_AGE",
        Some("1h"),
        "1h",
        "The subscriber cabinet opened as a Telegram Mini App signs in with the `initData` Telegram signed when it opened; older data than this is refused (the person opens the cabinet again).",
    ),
    var(
        "TERMS_TEXT",
        None,
        "Access is for personal use. Refunds within 3 days: write to support.",
        "Text of /terms (plain text; \\n for a new line). Unset: a short default in the user's language.",
    ),
    var(
        "REQUIRED_CHANNEL",
        None,
        "@my_vpn_news",
        "A channel (@username or -100… id) users must join before they use the bot. The bot must be an administrator there. Unset: no such requirement.",
    ),
    var(
        "BOT_RATE_LIMIT",
        Some("5/2s"),
        "10/5s",
        "Updates one user may send in a window; the excess is answered once with \"too fast\" and dropped.",
    ),
    var(
        "CLIENT_APPS",
        Some(DEFAULT_CLIENT_APPS),
        "Android=v2rayNG https://github.com/2dust/v2rayNG/releases;iOS=Streisand https://apps.apple.com/app/id6450534064",
        "The apps /status recommends, per platform: `Platform=App URL` separated by `;`.",
    ),
    secret(
        "SMTP_URL",
        "smtps://user:password@smtp.example.com:465",
        "Mail server for email notifications: smtps://… (TLS, port 465), smtp://… (STARTTLS, port 587), smtp://host:25?tls=none (no encryption, a local relay). Unset: email is off.",
    ),
    var(
        "SMTP_FROM",
        None,
        "VPN Shop <noreply@example.com>",
        "Sender of the emails. Required with SMTP_URL.",
    ),
    var(
        "SMTP_TIMEOUT",
        Some("15s"),
        "15s",
        "Timeout of one conversation with the mail server.",
    ),
    var(
        "EXPIRY_WARNING_DAYS",
        Some("3,1"),
        "7,3,1",
        "Days before a subscription ends at which the user is warned (trials: 1 day before).",
    ),
    var(
        "NOTIFICATIONS_SCAN_INTERVAL",
        Some("1h"),
        "1h",
        "Interval of `notifications_scan`: find who gets an expiry warning, an expired notice or a trial-ending notice.",
    ),
    var(
        "BROADCAST_RATE",
        None,
        "20",
        "Broadcast messages per second, at most TELEGRAM_MAX_RATE. Default: 80 % of TELEGRAM_MAX_RATE, so other messages still go out during a broadcast.",
    ),
    var(
        "DISPLAY_UTC_OFFSET",
        Some("+03:00"),
        "+03:00",
        "Time zone of the dates and times in messages, as an offset from UTC (Moscow: +03:00).",
    ),
    var(
        "ADMIN_EMAILS",
        None,
        "ops@example.com,owner@example.com",
        "Addresses (comma-separated) that get the admin alerts by email, besides the ADMIN_TELEGRAM_IDS on Telegram. Needs SMTP_URL. Unset: alerts go only to Telegram.",
    ),
    var(
        "ADMIN_LANGUAGE",
        Some("ru"),
        "en",
        "Language of the admin alerts and the daily digest by email, and on Telegram for an admin who has not chosen one in the bot: `ru` or `en`.",
    ),
    var(
        "ALERT_PANEL_DOWN_AFTER",
        Some("2m"),
        "5m",
        "How long the panel may be unreachable before the admins are alerted (and told again when it is back).",
    ),
    var(
        "ALERT_CHECK_INTERVAL",
        Some("30s"),
        "1m",
        "Interval of `alerts_check` (dead jobs, failing syncs, webhook probing, paid but not provisioned, the digest) and of the panel's health probe.",
    ),
    var(
        "ALERT_WEBHOOK_FAILURES",
        Some("20"),
        "50",
        "Refused (forged) payment webhooks in 5 minutes from which the admins are alerted that someone is probing; resolved once 5 minutes pass without one.",
    ),
    var(
        "ADMIN_NOTIFY_SALES",
        Some("false"),
        "true",
        "Tell the admins of every sale (plan, amount, provider, user).",
    ),
    var(
        "ADMIN_DIGEST_AT",
        Some("09:00"),
        "21:30",
        "Local time (DISPLAY_UTC_OFFSET) of the daily digest to the admins: the previous day's sales, revenue by provider, new users, trials, trial → paid conversions, renewals, refunds, and the subscriptions expiring tomorrow. `off`: no digest.",
    ),
    var(
        "YOOKASSA_SHOP_ID",
        None,
        "506751",
        "YooKassa shopId. Unset: YooKassa is not offered.",
    ),
    secret(
        "YOOKASSA_SECRET_KEY",
        "live_Xb3…",
        "YooKassa secret key (test_… for a test shop, live_… for real money). Required with YOOKASSA_SHOP_ID.",
    ),
    var(
        "YOOKASSA_API_URL",
        Some("https://api.yookassa.ru/v3"),
        "https://api.yookassa.ru/v3",
        "YooKassa API base.",
    ),
    var(
        "YOOKASSA_CHECK_IP",
        Some("true"),
        "false",
        "Accept YooKassa webhooks only from YooKassa's published address ranges (every webhook is also confirmed by asking the API).",
    ),
    var(
        "YOOKASSA_RECEIPTS",
        Some("false"),
        "true",
        "Send 54-FZ receipts through YooKassa (to users who gave an email; the shop must have receipts enabled).",
    ),
    var(
        "YOOKASSA_VAT_CODE",
        Some("1"),
        "1",
        "VAT code of the receipt item: 1 no VAT, 4 20 %, 11 22 % (YooKassa's table).",
    ),
    secret(
        "WATA_TOKEN",
        "eyJhbGciOi…",
        "WATA terminal access token (a JWT from the dashboard). Unset: WATA is not offered.",
    ),
    var(
        "WATA_API_URL",
        Some("https://api.wata.pro/api/h2h"),
        "https://api-sandbox.wata.pro/api/h2h",
        "WATA API base: production, or the sandbox.",
    ),
    var(
        "STARS_ENABLED",
        Some("false"),
        "true",
        "Sell for Telegram Stars (needs TELEGRAM_BOT_TOKEN; plans need a Stars price).",
    ),
    var(
        "TRUSTED_PROXIES",
        None,
        "127.0.0.1, 10.0.0.0/8",
        "Reverse proxies in front of the shop: X-Forwarded-For is believed only from these addresses (for the YooKassa IP check).",
    ),
    var(
        "PAYMENT_RETURN_URL",
        None,
        "https://t.me/my_vpn_bot",
        "Where the payment page sends the payer back. Default: the bot's t.me link.",
    ),
    var(
        "PAYMENT_LINK_TTL",
        Some("1h"),
        "1h",
        "How long a payment link stays open (WATA: 10m to 30d); unpaid orders expire after it.",
    ),
    var(
        "PAYMENT_POLL_AFTER",
        Some("15m"),
        "15m",
        "Orders still pending after this long are asked about at the provider (a lost webhook).",
    ),
    var(
        "PAYMENT_POLL_INTERVAL",
        Some("10m"),
        "10m",
        "Interval of `payments_poll`, which asks about those orders.",
    ),
    var(
        "PAYMENT_PROVIDER_TIMEOUT",
        Some("30s"),
        "30s",
        "How long a call to YooKassa or WATA may take; a refund whose answer did not come in time is not asked again.",
    ),
    var(
        "PAYMENT_EVENTS_RETENTION",
        Some("365d"),
        "365d",
        "Payment events (every webhook and update received, refused ones included) older than this are deleted by the `maintenance` task, except `accepted` and `mismatched` ones, the record of money, which are kept. At least 1d.",
    ),
    var(
        "AUTO_RENEW_DAYS_BEFORE",
        Some("1"),
        "1",
        "Days before the end at which a subscription with auto-renewal is charged (YooKassa saved cards).",
    ),
    var(
        "AUTO_RENEW_INTERVAL",
        Some("1h"),
        "1h",
        "Interval of `payments_auto_renew`, which charges those subscriptions.",
    ),
    var(
        "REFERRAL_INVITER_DAYS",
        Some("30"),
        "30",
        "Days the inviter gets when an invited user's first payment succeeds.",
    ),
    var(
        "REFERRAL_INVITEE_DAYS",
        Some("7"),
        "7",
        "Days a user gets when joining through a referral link.",
    ),
];

/// The sections of the reference: each starts at the variable named first (VARS keeps each
/// group together, in this order) and runs to the next one.
pub const SECTIONS: &[(&str, &str)] = &[
    ("DATABASE_URL", "General settings"),
    ("PANEL_KIND", "Panel settings"),
    ("TELEGRAM_BOT_TOKEN", "Telegram and notification settings"),
    ("YOOKASSA_SHOP_ID", "Payment settings"),
];

/// The per-variable reference as Markdown: one table per section of [`SECTIONS`], a row per
/// variable (its default, an example when it differs from the default, its meaning, and whether it
/// is a secret). `vpn-shop config-reference` prints it; the manual holds a copy.
pub fn reference_markdown() -> String {
    let mut out = String::new();
    for var in VARS {
        if let Some((_, title)) = SECTIONS.iter().find(|(first, _)| *first == var.name) {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!(
                "## {title}\n\n| variable | default | meaning |\n|---|---|---|\n"
            ));
        }
        let default = var.default.map_or("—".to_owned(), code);
        let mut meaning = var.help.to_owned();
        if var.default != Some(var.example) {
            meaning.push_str(&format!(" Example: {}.", code(var.example)));
        }
        if var.secret {
            meaning.push_str(" Secret.");
        }
        if let Some((old, _)) = RENAMED.iter().find(|(_, new)| *new == var.name) {
            meaning.push_str(&format!(
                " Formerly {} (still accepted, deprecated).",
                code(old)
            ));
        }
        out.push_str(&format!(
            "| {} | {default} | {} |\n",
            code(var.name),
            cell(&meaning)
        ));
    }
    out
}

/// `text` as an inline code span of a table cell: fenced by more backticks than it holds, and
/// with `|` escaped (GitHub and mdBook end the cell at a bare `|`, even inside code).
fn code(text: &str) -> String {
    let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    let pad = if longest_run > 0 { " " } else { "" };
    format!("{fence}{pad}{}{pad}{fence}", text.replace('|', "\\|"))
}

/// Prose for a table cell: a `|` would end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_starts_at_a_variable_and_the_first_at_the_first() {
        assert_eq!(SECTIONS[0].0, VARS[0].name);
        let mut last = 0;
        for (first, title) in SECTIONS {
            let at = VARS.iter().position(|v| v.name == *first);
            let at = at.unwrap_or_else(|| panic!("section {title} starts at {first}, not in VARS"));
            assert!(at >= last, "section {title} is out of order");
            last = at;
        }
    }

    #[test]
    fn the_reference_has_one_row_per_variable_and_a_table_per_section() {
        let reference = reference_markdown();
        let rows: Vec<&str> = reference.lines().filter(|l| l.starts_with("| `")).collect();
        assert_eq!(rows.len(), VARS.len());
        assert_eq!(
            reference
                .matches("| variable | default | meaning |")
                .count(),
            SECTIONS.len()
        );
        assert!(
            reference.contains(
                "| `SCHEDULER_TICK` | `5s` | How often the scheduler looks for due periodic tasks. |\n"
            ),
            "{reference}"
        );
        assert!(reference.contains(
            "| `JWT_SECRET` | — | Key that signs admin API tokens (≥ 32 characters). Unset: generated once \
             and kept in DATA_DIR/jwt_secret. Example: `a-random-string-of-at-least-32-characters`. \
             Secret. |"
        ));
    }

    #[test]
    fn code_spans_hold_backticks_and_pipes() {
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(code("x`y"), "`` x`y ``");
    }
}
