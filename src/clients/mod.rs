//! Thin typed clients of external APIs: request/response structs that mirror
//! `shared/reference/*.md`, a timeout on every call, retries only where the API makes them safe.

pub mod marzban;
