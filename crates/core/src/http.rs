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

/// Why a call brought no answer to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// No answer (the network, the deadline, a refused connection).
    Failed(String),
    /// An answer larger than the caller's cap, announced or read so far:
    /// never read whole (a deployed isolate has 128 MB).
    TooLarge { cap: usize },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Failed(why) => f.write_str(why),
            CallError::TooLarge { cap } => {
                write!(f, "the answer is larger than {cap} bytes and was not read")
            }
        }
    }
}

/// The most a ServiceNow answer may hold (a page of 10,000 transaction
/// log rows with long URLs can pass 40 MB): a larger one is not read, and
/// the page is asked again smaller.
pub const SERVICENOW_ANSWER_CAP: usize = 32 * 1024 * 1024;
/// The most a sink's answer may hold: only its status and a short reason
/// (or Elastic's per-document results) are read.
pub const SINK_ANSWER_CAP: usize = 4 * 1024 * 1024;
/// The most any other answer (Access certs, a token) may hold.
pub const SMALL_ANSWER_CAP: usize = 256 * 1024;

/// A body read chunk by chunk, refused as soon as it passes its cap.
#[derive(Debug)]
pub struct CappedBody {
    cap: usize,
    bytes: Vec<u8>,
}

impl CappedBody {
    /// `announced`: the answer's Content-Length, when it has one.
    pub fn new(cap: usize, announced: Option<usize>) -> Result<Self, CallError> {
        if announced.is_some_and(|n| n > cap) {
            return Err(CallError::TooLarge { cap });
        }
        Ok(CappedBody {
            cap,
            bytes: Vec::with_capacity(announced.unwrap_or(0).min(cap)),
        })
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), CallError> {
        if self.bytes.len().saturating_add(chunk.len()) > self.cap {
            return Err(CallError::TooLarge { cap: self.cap });
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
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
    fn a_body_past_its_cap_is_refused_as_announced_or_as_read() {
        assert_eq!(
            CappedBody::new(10, Some(11)).map(|_| ()),
            Err(CallError::TooLarge { cap: 10 })
        );
        let Ok(mut b) = CappedBody::new(10, None) else {
            panic!("a body without a length is read");
        };
        assert!(b.push(b"12345").is_ok());
        assert!(b.push(b"67890").is_ok());
        assert_eq!(b.push(b"x"), Err(CallError::TooLarge { cap: 10 }));
        assert!(CallError::TooLarge { cap: 10 }
            .to_string()
            .contains("larger than 10 bytes"));
    }

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
