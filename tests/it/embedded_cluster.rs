//! The shared test PostgreSQL server (`support::pg`) is started once per test process and accepts
//! connections from every test's runtime.

use crate::support;

use diesel::QueryableByName;
use diesel::sql_types::Integer;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

#[derive(QueryableByName)]
struct One {
    #[diesel(sql_type = Integer)]
    one: i32,
}

async fn select_one(url: &str) -> i32 {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .unwrap_or_else(|error| panic!("connecting to {url}: {error}"));
    let rows: Vec<One> = diesel::sql_query("SELECT 1 AS one")
        .load(&mut conn)
        .await
        .expect("SELECT 1");
    rows[0].one
}

#[tokio::test]
async fn the_test_server_is_started_once_and_accepts_connections() {
    let first = support::pg::server().await;
    let second = support::pg::server().await;
    assert!(
        std::ptr::eq(first, second),
        "server() started a second instance"
    );
    assert_eq!(select_one(&first.url_for("postgres")).await, 1);
}

#[tokio::test]
async fn another_test_runtime_shares_the_same_server() {
    let server = support::pg::server().await;
    assert_eq!(select_one(&server.url_for("postgres")).await, 1);
}

#[test]
fn urls_get_the_database_replaced() {
    let cases = [
        (
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://postgres@127.0.0.1:5432/t1",
        ),
        (
            "postgres://u:p@h/db?sslmode=disable",
            "postgres://u:p@h/t1?sslmode=disable",
        ),
        ("postgresql://h:5432", "postgresql://h:5432/t1"),
        (
            "postgres://h?application_name=x",
            "postgres://h/t1?application_name=x",
        ),
    ];
    for (url, expected) in cases {
        assert_eq!(support::pg::url_with_database(url, "t1"), expected);
    }
}

#[test]
fn dsns_get_the_database_replaced_or_added() {
    assert_eq!(
        support::pg::dsn_with_database("host=/run/pg port=5432 dbname=old user=x", "t1"),
        "host=/run/pg port=5432 user=x dbname=t1"
    );
    assert_eq!(
        support::pg::dsn_with_database("host = '/my dir' password='a\\'b'", "t1"),
        "host='/my dir' password='a\\'b' dbname=t1"
    );
}
