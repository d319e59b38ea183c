//! HTTP requests and responses as plain data: core builds and reads them, the
//! host's transport (worker fetch, browser fetch, a test) carries them.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// A request to send. Header values may hold credentials, so `Debug` hides them.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A response as received; `header` looks names up case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The media type without parameters, lower-cased (`text/html`).
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_ignores_case_and_media_type_drops_parameters() {
        let r = HttpResponse {
            status: 200,
            headers: vec![("Content-Type".into(), "Text/HTML; charset=utf-8".into())],
            body: vec![],
        };
        assert_eq!(r.header("content-type"), Some("Text/HTML; charset=utf-8"));
        assert_eq!(r.media_type().as_deref(), Some("text/html"));
        assert_eq!(r.header("x-missing"), None);
    }

    #[test]
    fn request_debug_shows_header_names_but_not_values() {
        let r = HttpRequest {
            method: Method::Get,
            url: "https://acme.service-now.com/api".into(),
            headers: vec![("Authorization".into(), "Bearer s3cr3t".into())],
            body: b"password=hunter2".to_vec(),
        };
        let shown = format!("{r:?}");
        assert!(shown.contains("Authorization"));
        assert!(!shown.contains("s3cr3t"));
        assert!(!shown.contains("hunter2"));
    }
}
