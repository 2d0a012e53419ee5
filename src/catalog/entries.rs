//! The catalog itself: which models exist, where their files are, what they are.
//!
//! Data, not code: `assets/catalog.toml` is embedded in the binary, and a user file of the same
//! layout (`<config dir>/catalog.toml`) adds entries or replaces those of the same name. The
//! on-disk form (`RawCatalog`, with `Option`s and a `[defaults]` table) is resolved into
//! [`Catalog`] entries that have every field set.

use std::path::Path;

use serde::Deserialize;

use super::error::CatalogError;

/// The catalog shipped in the binary.
pub const BUILTIN_CATALOG: &str = include_str!("../../assets/catalog.toml");

/// One file of a model, as listed in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the model's folder, `/`-separated (e.g. `checkpoints/model.pth`); the
    /// same path is used under the base URL and in the installed folder.
    pub path: String,
    /// Size in bytes, when known.
    #[serde(default)]
    pub size: Option<u64>,
    /// Lower-case hex sha256, when known.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// One model of the catalog, every field resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    /// The name, exactly as published (e.g. `sup.musdb18hq.bslocoformer-small`); also the name
    /// of its installed folder.
    pub name: String,
    /// What it is, in one line.
    pub description: String,
    /// Network family: `bs-locoformer` (mixit-mss) or `tf-locoformer`.
    pub architecture: String,
    /// Separated sources in output order.
    pub sources: Vec<String>,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Audio channels the network takes (1 mono, 2 stereo).
    pub channels: u32,
    /// SPDX licence of the weights.
    pub license: String,
    /// How to cite the work the weights come from (empty when nothing to cite).
    pub citation: String,
    /// Project page (empty when none).
    pub home_page: String,
    /// Base URL the `dir` is relative to, ending in `/`.
    pub base_url: String,
    /// Folder of the files under the base URL (e.g. `models/sup/<name>`).
    pub dir: String,
    /// Files that make up the model.
    pub files: Vec<FileEntry>,
    /// For a model shipped with locosep: its folder under the assets root (nothing to download).
    pub bundled: Option<String>,
}

impl ModelEntry {
    /// The URL of `file` under `base` (the catalog's base URL or a mirror).
    pub fn file_url(&self, base: &str, file: &FileEntry) -> String {
        let mut url = base.to_string();
        if !url.ends_with('/') {
            url.push('/');
        }
        if !self.dir.is_empty() {
            url.push_str(self.dir.trim_matches('/'));
            url.push('/');
        }
        url.push_str(file.path.trim_start_matches('/'));
        url
    }

    /// The sum of the known file sizes, and whether every size is known.
    pub fn known_size(&self) -> (u64, bool) {
        let total = self.files.iter().filter_map(|f| f.size).sum();
        (total, self.files.iter().all(|f| f.size.is_some()))
    }
}

/// `[defaults]` and every `[[model]]` table: all optional on disk (`name`, `dir` and `bundled`
/// only make sense in a `[[model]]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFields {
    name: Option<String>,
    dir: Option<String>,
    bundled: Option<String>,
    description: Option<String>,
    architecture: Option<String>,
    sources: Option<Vec<String>>,
    sample_rate: Option<u32>,
    channels: Option<u32>,
    license: Option<String>,
    citation: Option<String>,
    home_page: Option<String>,
    base_url: Option<String>,
    files: Option<Vec<FileEntry>>,
}

/// A catalog file as written on disk.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(default)]
    defaults: RawFields,
    #[serde(default)]
    model: Vec<RawFields>,
}

/// The resolved catalog: entries in file order (built-in first, then the user's new ones).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// The models.
    pub models: Vec<ModelEntry>,
}

impl Catalog {
    /// The built-in catalog.
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::parse(BUILTIN_CATALOG, "built-in")
    }

    /// The built-in catalog, then `user` (when it exists) merged over it.
    pub fn load(user: Option<&Path>) -> Result<Self, CatalogError> {
        let mut cat = Self::builtin()?;
        if let Some(path) = user.filter(|p| p.exists()) {
            let text = std::fs::read_to_string(path).map_err(|e| CatalogError::io(path, e))?;
            cat.merge(Self::parse(&text, &path.display().to_string())?);
        }
        Ok(cat)
    }

    /// Parses one catalog file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CatalogError> {
        let bad = |detail: String| CatalogError::BadCatalog {
            origin: origin.to_string(),
            detail,
        };
        let raw: RawCatalog = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let d = raw.defaults;
        if d.name.is_some() || d.dir.is_some() || d.bundled.is_some() {
            return Err(bad(
                "`name`, `dir` and `bundled` belong in a [[model]], not in [defaults]".into(),
            ));
        }
        let mut models: Vec<ModelEntry> = vec![];
        for f in raw.model {
            let name = f
                .name
                .clone()
                .ok_or_else(|| bad("a [[model]] has no `name`".into()))?;
            validate_name(&name).map_err(|e| bad(e.to_string()))?;
            if models.iter().any(|e| e.name == name) {
                return Err(bad(format!("model `{name}` is listed twice")));
            }
            let need = |v: Option<String>, what: &str| {
                v.ok_or_else(|| bad(format!("model `{}` has no `{what}`", name)))
            };
            let files = f
                .files
                .or_else(|| d.files.clone())
                .ok_or_else(|| bad(format!("model `{}` has no `files`", name)))?;
            if files.is_empty() {
                return Err(bad(format!("model `{}` lists no files", name)));
            }
            for file in &files {
                check_rel_path(&file.path)
                    .map_err(|detail| bad(format!("model `{}`: {detail}", name)))?;
                if let Some(h) = &file.sha256
                    && !is_sha256(h)
                {
                    return Err(bad(format!(
                        "model `{}`: sha256 of {} is not 64 hex digits",
                        name, file.path
                    )));
                }
            }
            let base_url = f
                .base_url
                .or_else(|| d.base_url.clone())
                .unwrap_or_default();
            if f.bundled.is_none() && base_url.is_empty() {
                return Err(bad(format!("model `{}` has no `base_url`", name)));
            }
            models.push(ModelEntry {
                description: f
                    .description
                    .or_else(|| d.description.clone())
                    .unwrap_or_default(),
                architecture: need(
                    f.architecture.or_else(|| d.architecture.clone()),
                    "architecture",
                )?,
                sources: f
                    .sources
                    .or_else(|| d.sources.clone())
                    .ok_or_else(|| bad(format!("model `{}` has no `sources`", name)))?,
                sample_rate: f
                    .sample_rate
                    .or(d.sample_rate)
                    .ok_or_else(|| bad(format!("model `{}` has no `sample_rate`", name)))?,
                channels: f.channels.or(d.channels).unwrap_or(1),
                license: need(f.license.or_else(|| d.license.clone()), "license")?,
                citation: f
                    .citation
                    .or_else(|| d.citation.clone())
                    .unwrap_or_default(),
                home_page: f
                    .home_page
                    .or_else(|| d.home_page.clone())
                    .unwrap_or_default(),
                base_url,
                dir: f.dir.unwrap_or_default(),
                files,
                bundled: f.bundled,
                name,
            });
        }
        Ok(Self { models })
    }

    /// Adds `other`'s entries; an entry with a name already present replaces it in place.
    pub fn merge(&mut self, other: Catalog) {
        for m in other.models {
            match self.models.iter_mut().find(|e| e.name == m.name) {
                Some(slot) => *slot = m,
                None => self.models.push(m),
            }
        }
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Result<&ModelEntry, CatalogError> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| CatalogError::UnknownModel {
                name: name.to_string(),
                known: self.names().join(", "),
            })
    }

    /// Every name, in catalog order.
    pub fn names(&self) -> Vec<String> {
        self.models.iter().map(|m| m.name.clone()).collect()
    }
}

/// Accepts names that are safe as one folder name: ASCII letters, digits, `.`, `-`, `_`, not
/// starting with `.`, at most 200 characters.
pub fn validate_name(name: &str) -> Result<(), CatalogError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CatalogError::BadName(name.to_string()))
    }
}

/// A relative `/`-separated path with no empty, `.` or `..` component.
fn check_rel_path(path: &str) -> Result<(), String> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        Err(format!(
            "file path `{path}` must be relative, without `.`/`..`"
        ))
    } else {
        Ok(())
    }
}

/// 64 hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLISHED: [&str; 9] = [
        "sup.musdb18hq.bslocoformer-large",
        "sup.musdb18hq.bslocoformer-large.mixit-fma-large-pretrained",
        "sup.musdb18hq.bslocoformer-medium",
        "sup.musdb18hq.bslocoformer-medium.mixit-fma-full-pretrained",
        "sup.musdb18hq.bslocoformer-medium.mixit-fma-large-pretrained",
        "sup.musdb18hq.bslocoformer-medium.mixit-fma-medium-pretrained",
        "sup.musdb18hq.bslocoformer-medium.mixit-fma-small-pretrained",
        "sup.musdb18hq.bslocoformer-small",
        "sup.musdb18hq.bslocoformer-small.mixit-fma-large-pretrained",
    ];

    #[test]
    fn builtin_lists_the_nine_published_models_and_the_demo() {
        let cat = Catalog::builtin().unwrap();
        let mut names = cat.names();
        names.retain(|n| n != "demo");
        names.sort();
        assert_eq!(names, PUBLISHED);
        let demo = cat.get("demo").unwrap();
        assert_eq!(demo.bundled.as_deref(), Some("models/demo"));
        for name in PUBLISHED {
            let m = cat.get(name).unwrap();
            assert_eq!(m.sources, ["bass", "drums", "vocals", "other"]);
            assert_eq!((m.sample_rate, m.channels), (44100, 2));
            assert_eq!(m.license, "MIT");
            assert!(m.citation.contains("Saijo") && m.citation.contains("WASPAA"));
            assert!(m.bundled.is_none());
            // No invented hashes: none is published.
            assert!(m.files.iter().all(|f| f.sha256.is_none()));
            let urls: Vec<String> = m.files.iter().map(|f| m.file_url(&m.base_url, f)).collect();
            let base = "https://huggingface.co/kohei0209/mixit_mss/resolve/\
                        20a286f28b4a4c9058b935544cb7934ecc132443/models/sup/";
            assert_eq!(
                urls,
                [
                    format!("{base}{name}/merged_config.yaml"),
                    format!("{base}{name}/checkpoints/model.pth"),
                ]
            );
        }
    }

    #[test]
    fn mirror_urls_keep_the_published_tree() {
        let cat = Catalog::builtin().unwrap();
        let m = cat.get("sup.musdb18hq.bslocoformer-small").unwrap();
        assert_eq!(
            m.file_url("http://127.0.0.1:8080/mirror", &m.files[1]),
            "http://127.0.0.1:8080/mirror/models/sup/sup.musdb18hq.bslocoformer-small/checkpoints/model.pth"
        );
    }

    #[test]
    fn user_file_replaces_and_adds() {
        let mut cat = Catalog::builtin().unwrap();
        let n = cat.models.len();
        let user = Catalog::parse(
            r#"
            [defaults]
            base_url = "http://example.invalid/"
            architecture = "tf-locoformer"
            sources = ["vocals", "other"]
            sample_rate = 44100
            license = "MIT"
            files = [{ path = "config.json", size = 10 }]
            [[model]]
            name = "demo"
            dir = "x"
            [[model]]
            name = "mine"
            "#,
            "user",
        )
        .unwrap();
        cat.merge(user);
        assert_eq!(cat.models.len(), n + 1);
        assert_eq!(cat.get("demo").unwrap().dir, "x");
        assert_eq!(cat.get("mine").unwrap().known_size(), (10, true));
    }

    #[test]
    fn bad_catalogs_are_refused_with_the_reason() {
        let cases = [
            ("[[model]]\nname = \"../x\"", "not a valid model name"),
            (
                "[[model]]\nname = \"a\"\nbase_url = \"u\"\narchitecture = \"x\"\nsources = []\nsample_rate = 1\nlicense = \"MIT\"\nfiles = [{ path = \"../etc\" }]",
                "must be relative",
            ),
            (
                "[[model]]\nname = \"a\"\nbase_url = \"u\"\narchitecture = \"x\"\nsources = []\nsample_rate = 1\nlicense = \"MIT\"\nfiles = [{ path = \"f\", sha256 = \"zz\" }]",
                "64 hex",
            ),
            ("[[model]]\nname = \"a\"\nbase_url = \"u\"", "no `files`"),
            ("[[model]]\nname = \"a\"\ncolour = 1", "unknown field"),
        ];
        for (text, want) in cases {
            let err = Catalog::parse(text, "t").unwrap_err().to_string();
            assert!(err.contains(want), "{err} should contain {want}");
        }
        assert!(matches!(
            Catalog::builtin().unwrap().get("nope"),
            Err(CatalogError::UnknownModel { .. })
        ));
    }
}
