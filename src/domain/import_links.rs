//! One-tap import of a subscription link into the common VPN client apps: the deep link each
//! app documents (shared/reference/vpn-app-import.md), per platform. Where the link goes in the
//! deep link decides its encoding: raw in a path (Hiddify does not recognise an encoded one),
//! `encodeURIComponent` in a query. A missing app makes the link do nothing, so the cabinet
//! shows copy and QR beside these buttons.

/// Where an app runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Android,
    Ios,
    Desktop,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::Android, Platform::Ios, Platform::Desktop];

    pub const fn as_str(self) -> &'static str {
        match self {
            Platform::Android => "android",
            Platform::Ios => "ios",
            Platform::Desktop => "desktop",
        }
    }
}

/// A client app and how it imports a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct App {
    pub name: &'static str,
    pub platforms: &'static [Platform],
    scheme: Scheme,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// `hiddify://import/U#N`
    Hiddify,
    /// `v2rayng://install-config?url=enc(U)#N` (`name=` is ignored by the app)
    V2rayNg,
    /// `streisand://import/U#N`
    Streisand,
    /// `v2raytun://import/U` (the name comes from the panel's `profile-title`)
    V2rayTun,
    /// `happ://add/U`
    Happ,
    /// `foxray://yiguo.dev/sub/add/?url=U#N`
    FoXray,
}

/// The apps offered, in the order shown.
pub const APPS: &[App] = &[
    App {
        name: "Hiddify",
        platforms: &[Platform::Android, Platform::Ios, Platform::Desktop],
        scheme: Scheme::Hiddify,
    },
    App {
        name: "v2rayNG",
        platforms: &[Platform::Android],
        scheme: Scheme::V2rayNg,
    },
    App {
        name: "Streisand",
        platforms: &[Platform::Ios],
        scheme: Scheme::Streisand,
    },
    App {
        name: "v2RayTun",
        platforms: &[Platform::Android, Platform::Ios],
        scheme: Scheme::V2rayTun,
    },
    App {
        name: "Happ",
        platforms: &[Platform::Android, Platform::Ios, Platform::Desktop],
        scheme: Scheme::Happ,
    },
    App {
        name: "FoXray",
        platforms: &[Platform::Ios, Platform::Desktop],
        scheme: Scheme::FoXray,
    },
];

/// `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` percent-encoded.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl App {
    /// The deep link that adds subscription `url` to this app, named `name` where the app
    /// takes a name.
    pub fn link(&self, url: &str, name: &str) -> String {
        let n = encode_component(name);
        match self.scheme {
            Scheme::Hiddify => format!("hiddify://import/{url}#{n}"),
            Scheme::V2rayNg => {
                format!("v2rayng://install-config?url={}#{n}", encode_component(url))
            }
            Scheme::Streisand => format!("streisand://import/{url}#{n}"),
            Scheme::V2rayTun => format!("v2raytun://import/{url}"),
            Scheme::Happ => format!("happ://add/{url}"),
            Scheme::FoXray => format!("foxray://yiguo.dev/sub/add/?url={url}#{n}"),
        }
    }
}

/// The import buttons of one platform: app name and deep link.
pub fn for_platform(platform: Platform, url: &str, name: &str) -> Vec<(&'static str, String)> {
    APPS.iter()
        .filter(|app| app.platforms.contains(&platform))
        .map(|app| (app.name, app.link(url, name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const U: &str = "https://panel.example.com/sub/dXNlcl8xMjM0NTY3ODk";

    fn link(app: &str) -> String {
        APPS.iter()
            .find(|a| a.name == app)
            .unwrap()
            .link(U, "My VPN")
    }

    #[test]
    fn each_app_gets_its_documented_scheme() {
        assert_eq!(
            link("Hiddify"),
            "hiddify://import/https://panel.example.com/sub/dXNlcl8xMjM0NTY3ODk#My%20VPN"
        );
        assert_eq!(
            link("v2rayNG"),
            "v2rayng://install-config?url=https%3A%2F%2Fpanel.example.com%2Fsub%2FdXNlcl8xMjM0NTY3ODk#My%20VPN"
        );
        assert_eq!(
            link("Streisand"),
            "streisand://import/https://panel.example.com/sub/dXNlcl8xMjM0NTY3ODk#My%20VPN"
        );
        assert_eq!(
            link("v2RayTun"),
            "v2raytun://import/https://panel.example.com/sub/dXNlcl8xMjM0NTY3ODk"
        );
        assert_eq!(
            link("Happ"),
            "happ://add/https://panel.example.com/sub/dXNlcl8xMjM0NTY3ODk"
        );
        assert_eq!(
            link("FoXray"),
            "foxray://yiguo.dev/sub/add/?url=https://panel.example.com/sub/dXNlcl8xMjM0NTY3ODk#My%20VPN"
        );
    }

    #[test]
    fn every_platform_has_apps_and_every_app_a_platform() {
        for platform in Platform::ALL {
            assert!(!for_platform(platform, U, "x").is_empty(), "{platform:?}");
        }
        for app in APPS {
            assert!(!app.platforms.is_empty(), "{}", app.name);
        }
        let ios: Vec<_> = for_platform(Platform::Ios, U, "x")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(ios, ["Hiddify", "Streisand", "v2RayTun", "Happ", "FoXray"]);
    }

    #[test]
    fn encoding_is_encode_uri_component() {
        assert_eq!(
            encode_component("a b&c=d/é?+#"),
            "a%20b%26c%3Dd%2F%C3%A9%3F%2B%23"
        );
        assert_eq!(encode_component("A-z_0.9!~*'()"), "A-z_0.9!~*'()");
    }

    proptest! {
        #[test]
        fn a_query_style_link_decodes_back_to_the_url(url in "https://[a-z.]{1,20}/[ -~]{0,40}") {
            let l = APPS[1].link(&url, "n");
            let query = l.strip_prefix("v2rayng://install-config?url=").unwrap();
            let encoded = query.rsplit_once('#').unwrap().0;
            prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()%".contains(&b)));
            let decoded: String = serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("u={}", encoded.replace('+', "%2B")))
                .unwrap()
                .remove(0)
                .1;
            prop_assert_eq!(decoded, url);
        }
    }
}
