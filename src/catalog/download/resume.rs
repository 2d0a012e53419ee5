//! One file fetched into its part file, resumed with `Range: bytes=N-` from what an earlier
//! attempt left on disk, hashed as it is written.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::cancel::CancelToken;
use crate::catalog::entries::FileEntry;
use crate::catalog::error::CatalogError;
use crate::catalog::store::{InstalledFile, hash_file, hash_reader, hex};

use super::http::{etag_sha256, get, header_of, parse_content_range};
use super::part::{check_and_rename, part_path, remove};

/// Fetches one file into `<dest>.part` (resuming), checks it and renames it to `dest`.
pub(super) fn fetch_file(
    agent: &ureq::Agent,
    url: &str,
    file: &FileEntry,
    dest: &Path,
    report: &mut dyn FnMut(u64, Option<u64>, u64),
    cancel: &CancelToken,
) -> Result<InstalledFile, CatalogError> {
    let part = part_path(dest);
    let mut restarted = false;
    loop {
        let mut offset = match std::fs::metadata(&part) {
            Ok(m) => m.len(),
            Err(_) => 0,
        };
        if file.size.is_some_and(|s| offset > s) {
            remove(&part)?;
            offset = 0;
        }
        let (resp, announced) = get(agent, url, offset)?;
        let status = resp.status().as_u16();
        let header = |k: &str| header_of(&resp, k);
        let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let mut announced = announced;
        if announced.sha256.is_none() {
            announced.sha256 = header("x-linked-etag")
                .or_else(|| header("etag"))
                .and_then(|e| etag_sha256(&e));
        }
        let (start, total) = match status {
            200 => (0, content_length.or(announced.size)),
            206 => {
                let range = header("content-range").and_then(|v| parse_content_range(&v));
                match range {
                    Some((start, total)) if start == offset => {
                        (start, total.or(content_length.map(|n| start + n)))
                    }
                    // A range we did not ask for: start over once.
                    _ if !restarted => {
                        remove(&part)?;
                        restarted = true;
                        continue;
                    }
                    _ => {
                        return Err(CatalogError::Http {
                            url: url.to_string(),
                            status,
                        });
                    }
                }
            }
            416 if offset > 0 && !restarted => {
                // The part is as long as (or longer than) the file: check it, or start over.
                let total = header("content-range").and_then(|v| parse_content_range(&v));
                if let Some((_, Some(t))) = total
                    && t == offset
                {
                    let (sha256, size) = hash_file(&part)?;
                    return check_and_rename(
                        &part,
                        dest,
                        file,
                        announced.sha256.as_deref(),
                        sha256,
                        size,
                    );
                }
                remove(&part)?;
                restarted = true;
                continue;
            }
            404 | 410 => {
                return Err(CatalogError::NotFound {
                    url: url.to_string(),
                });
            }
            _ => {
                return Err(CatalogError::Http {
                    url: url.to_string(),
                    status,
                });
            }
        };
        if let (Some(want), Some(t)) = (file.size, total)
            && want != t
        {
            return Err(CatalogError::Corrupt {
                file: file.path.clone(),
                detail: format!("the server has {t} bytes, the catalog says {want}"),
            });
        }
        let total = total.or(file.size);
        // Open the part: appended to on 206, rewritten from 0 on 200 (range ignored).
        let mut out = OpenOptions::new()
            .create(true)
            .append(start > 0)
            .write(true)
            .truncate(start == 0)
            .open(&part)
            .map_err(|e| CatalogError::io(&part, e))?;
        let mut hasher = Sha256::new();
        if start > 0 {
            // Hash the bytes kept on disk instead of reading the whole file again at the end.
            let mut existing =
                std::fs::File::open(&part).map_err(|e| CatalogError::io(&part, e))?;
            let n = hash_reader(&mut (&mut existing).take(start), &mut hasher)
                .map_err(|e| CatalogError::io(&part, e))?;
            if n != start {
                remove(&part)?;
                continue;
            }
        }
        let mut done = start;
        report(done, total, start);
        let mut body = resp.into_body().into_reader();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            if cancel.is_cancelled() {
                out.sync_data().map_err(|e| CatalogError::io(&part, e))?;
                return Err(CatalogError::Cancelled);
            }
            let k = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    out.sync_data().map_err(|e| CatalogError::io(&part, e))?;
                    return Err(match total {
                        Some(expected) => CatalogError::Truncated {
                            url: url.to_string(),
                            got: done,
                            expected,
                        },
                        None => CatalogError::Network {
                            url: url.to_string(),
                            detail: e.to_string(),
                        },
                    });
                }
            };
            out.write_all(&buf[..k])
                .map_err(|e| CatalogError::io(&part, e))?;
            hasher.update(&buf[..k]);
            done += k as u64;
            report(done, total, start);
        }
        out.sync_all().map_err(|e| CatalogError::io(&part, e))?;
        drop(out);
        if let Some(expected) = total
            && done < expected
        {
            return Err(CatalogError::Truncated {
                url: url.to_string(),
                got: done,
                expected,
            });
        }
        let sha256 = hex(&hasher.finalize());
        return check_and_rename(&part, dest, file, announced.sha256.as_deref(), sha256, done);
    }
}
