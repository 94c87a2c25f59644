//! The payment providers most tests sell through: a fake YooKassa and a fake WATA, and the
//! settings that point the shop at them.

use super::wata::{self, FakeWata};
use super::yookassa::{self, FakeYooKassa};

/// Both fakes, running; they stop when dropped.
pub struct Providers {
    pub yookassa: FakeYooKassa,
    pub wata: FakeWata,
    yookassa_url: String,
    wata_url: String,
}

impl Providers {
    pub fn start() -> Providers {
        let yookassa = FakeYooKassa::start();
        let wata = FakeWata::start();
        let (yookassa_url, wata_url) = (yookassa.url(), wata.url());
        Providers {
            yookassa,
            wata,
            yookassa_url,
            wata_url,
        }
    }

    /// The six settings of both providers (the sender-IP check off: the fakes post from
    /// 127.0.0.1), for `spawn_app` and friends; extend it with a test's own settings.
    pub fn env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("YOOKASSA_SHOP_ID", yookassa::SHOP_ID),
            ("YOOKASSA_SECRET_KEY", yookassa::SECRET_KEY),
            ("YOOKASSA_API_URL", self.yookassa_url.as_str()),
            ("YOOKASSA_CHECK_IP", "false"),
            ("WATA_TOKEN", wata::TOKEN),
            ("WATA_API_URL", self.wata_url.as_str()),
        ]
    }
}
