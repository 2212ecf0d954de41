//! ListObjectsV2: its query parameters, one page of keys, and the XML answer.

use std::time::SystemTime;

use super::error::S3Error;
use super::files::{Bucket, Listed};
use super::xml_escape;

/// S3's page size, and the most `max-keys` may ask for.
const MAX_KEYS: usize = 1000;

/// One ListObjectsV2 request (`GET /bucket?list-type=2&…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    pub prefix: String,
    /// `continuation-token`: the last key of the previous page (the token is that key, as is).
    pub continuation_token: Option<String>,
    pub start_after: Option<String>,
    pub max_keys: usize,
}

impl ListRequest {
    /// From the decoded query parameters. `delimiter` and `encoding-type` change what S3 answers, so
    /// they are refused rather than ignored; `fetch-owner` is ignored (no owner is answered).
    pub fn from_query(params: &[(String, String)]) -> Result<ListRequest, S3Error> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        for unsupported in ["delimiter", "encoding-type"] {
            if get(unsupported).is_some_and(|v| !v.is_empty()) {
                return Err(S3Error::NotImplemented(format!(
                    "ddb-bench-endpoint's ListObjectsV2 does not implement `{unsupported}`"
                )));
            }
        }
        let max_keys = match get("max-keys") {
            None => MAX_KEYS,
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| {
                    S3Error::InvalidArgument(format!(
                        "max-keys `{v}` is not a non-negative integer"
                    ))
                })?
                .min(MAX_KEYS),
        };
        Ok(ListRequest {
            prefix: get("prefix").unwrap_or_default(),
            continuation_token: get("continuation-token"),
            start_after: get("start-after"),
            max_keys,
        })
    }

    /// Lists the page this request asks for (blocking: it reads directories).
    pub fn page(&self, bucket: &Bucket) -> Result<Page, S3Error> {
        let keys = bucket.keys(&self.prefix)?;
        // S3 ignores StartAfter once there is a continuation token.
        let after = self
            .continuation_token
            .as_deref()
            .or(self.start_after.as_deref());
        let first = after.map_or(0, |after| keys.partition_point(|k| k.as_str() <= after));
        let candidates = &keys[first..];
        let taken = candidates.len().min(self.max_keys);
        let truncated = taken < candidates.len() && taken > 0;
        // A file removed since the directory was read is left out of the page.
        let contents: Vec<Listed> = candidates[..taken]
            .iter()
            .filter_map(|key| {
                bucket.stat(key).map(|version| Listed {
                    key: key.clone(),
                    version,
                })
            })
            .collect();
        Ok(Page {
            next_token: truncated.then(|| candidates[taken - 1].clone()),
            contents,
        })
    }

    /// The `ListBucketResult` document for `page` of `bucket`.
    pub fn xml(&self, bucket: &str, page: &Page) -> String {
        let mut xml = String::with_capacity(512 + page.contents.len() * 256);
        xml.push_str(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
        );
        element(&mut xml, "Name", bucket);
        element(&mut xml, "Prefix", &self.prefix);
        element(&mut xml, "KeyCount", &page.contents.len().to_string());
        element(&mut xml, "MaxKeys", &self.max_keys.to_string());
        element(
            &mut xml,
            "IsTruncated",
            if page.next_token.is_some() {
                "true"
            } else {
                "false"
            },
        );
        if let Some(token) = &self.continuation_token {
            element(&mut xml, "ContinuationToken", token);
        }
        if let Some(token) = &page.next_token {
            element(&mut xml, "NextContinuationToken", token);
        }
        if let Some(after) = &self.start_after {
            element(&mut xml, "StartAfter", after);
        }
        for listed in &page.contents {
            xml.push_str("<Contents>");
            element(&mut xml, "Key", &listed.key);
            element(&mut xml, "LastModified", &iso8601(listed.version.modified));
            element(&mut xml, "ETag", &listed.version.etag);
            element(&mut xml, "Size", &listed.version.size.to_string());
            element(&mut xml, "StorageClass", "STANDARD");
            xml.push_str("</Contents>");
        }
        xml.push_str("</ListBucketResult>");
        xml
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub contents: Vec<Listed>,
    /// Set when more keys follow.
    pub next_token: Option<String>,
}

fn element(xml: &mut String, name: &str, text: &str) {
    xml.push('<');
    xml.push_str(name);
    xml.push('>');
    xml.push_str(&xml_escape(text));
    xml.push_str("</");
    xml.push_str(name);
    xml.push('>');
}

/// `2024-05-01T12:00:00.000Z`, the form of S3's `LastModified` in listings.
fn iso8601(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parameters_are_read_clamped_and_checked() {
        let r =
            ListRequest::from_query(&query(&[("list-type", "2"), ("max-keys", "5000")])).unwrap();
        assert_eq!((r.max_keys, r.prefix.as_str()), (MAX_KEYS, ""));
        assert!(matches!(
            ListRequest::from_query(&query(&[("max-keys", "-1")])),
            Err(S3Error::InvalidArgument(_))
        ));
        assert!(matches!(
            ListRequest::from_query(&query(&[("delimiter", "/")])),
            Err(S3Error::NotImplemented(_))
        ));
    }

    #[test]
    fn pages_follow_tokens_and_start_after() {
        let root = tempfile::tempdir().unwrap();
        for name in ["k1", "k2", "k3", "other"] {
            fs::write(root.path().join(name), name).unwrap();
        }
        let bucket = Bucket {
            name: "b".into(),
            dir: root.path().to_path_buf(),
        };
        let mut request = ListRequest {
            prefix: "k".into(),
            continuation_token: None,
            start_after: Some("k1".into()),
            max_keys: 1,
        };
        let keys = |p: &Page| p.contents.iter().map(|l| l.key.clone()).collect::<Vec<_>>();
        let page = request.page(&bucket).unwrap();
        assert_eq!(
            (keys(&page), page.next_token.as_deref()),
            (vec!["k2".to_owned()], Some("k2"))
        );
        request.continuation_token = page.next_token;
        let page = request.page(&bucket).unwrap();
        assert_eq!(
            (keys(&page), page.next_token.clone()),
            (vec!["k3".to_owned()], None)
        );
        assert_eq!(page.contents[0].version.size, 2);
        let xml = request.xml("b", &page);
        assert!(
            xml.contains("<Key>k3</Key>")
                && xml.contains("<IsTruncated>false</IsTruncated>")
                && xml.contains("<ContinuationToken>k2</ContinuationToken>")
                && xml.contains("<KeyCount>1</KeyCount>"),
            "{xml}"
        );
    }
}
