//! `locosep models`: list the catalog and the installed models, download (resumable, verified),
//! import a folder downloaded by hand, remove.

use crate::cancel::CancelToken;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::catalog::store::dir_size;
use crate::catalog::{
    Catalog, CatalogError, DownloadOptions, DownloadProgress, ModelEntry, Store, bundled_dir,
    download_model, load_catalog,
};

/// Arguments of `models`.
#[derive(Args, Debug)]
pub struct ModelsArgs {
    /// What to do; without one, list the catalog and the installed models.
    #[command(subcommand)]
    pub action: Option<ModelsAction>,
    /// A catalog file merged over the built-in one (default: `<config dir>/catalog.toml`).
    #[arg(long, global = true, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
}

/// The `models` subcommands.
#[derive(Subcommand, Debug)]
pub enum ModelsAction {
    /// List the catalog and the installed models, with sizes and where they are.
    List,
    /// Download models of the catalog (resumes an interrupted download).
    Download {
        /// Model names as listed by `locosep models`.
        #[arg(required = true)]
        names: Vec<String>,
        /// Base URL of a mirror (a plain copy of the published tree); also
        /// `LOCOSEP_MODEL_MIRROR`.
        #[arg(long, value_name = "URL")]
        mirror: Option<String>,
        /// Replace the model if it is already installed.
        #[arg(long)]
        replace: bool,
    },
    /// Import a model folder downloaded by hand (checked, then copied into the data folder).
    Add {
        /// The folder (e.g. `<name>/` with `merged_config.yaml` and `checkpoints/model.pth`).
        folder: PathBuf,
        /// Name to install it under (default: the folder's name).
        #[arg(long)]
        name: Option<String>,
        /// Replace an installed model of that name.
        #[arg(long)]
        replace: bool,
    },
    /// Remove an installed model.
    Remove {
        /// The model's name.
        name: String,
    },
}

/// Runs `locosep models …`.
pub fn run(args: ModelsArgs) -> Result<()> {
    let catalog = match &args.catalog {
        Some(path) => {
            if !path.is_file() {
                bail!("catalog file {} does not exist", path.display());
            }
            Catalog::load(Some(path))?
        }
        None => load_catalog()?,
    };
    let store = Store::from_env()?;
    match args.action.unwrap_or(ModelsAction::List) {
        ModelsAction::List => list(&catalog, &store),
        ModelsAction::Download {
            names,
            mirror,
            replace,
        } => {
            let mut opts = DownloadOptions::from_env();
            if mirror.is_some() {
                opts.mirror = mirror;
            }
            opts.replace = replace;
            download(&catalog, &store, &names, &opts)
        }
        ModelsAction::Add {
            folder,
            name,
            replace,
        } => add(&catalog, &store, &folder, name, replace),
        ModelsAction::Remove { name } => {
            if let Ok(e) = catalog.get(&name)
                && e.bundled.is_some()
            {
                return Err(CatalogError::Bundled(name).into());
            }
            let dir = store.remove(&name)?;
            println!("removed {name} ({})", dir.display());
            Ok(())
        }
    }
}

fn human_bytes(n: u64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    if n >= 1 << 30 {
        format!("{:.2} GiB", n as f64 / (MIB * 1024.0))
    } else if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / MIB)
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}

fn list(catalog: &Catalog, store: &Store) -> Result<()> {
    let installed = store.installed()?;
    println!(
        "{:<62} {:<14} {:>10}  status",
        "model", "architecture", "size"
    );
    for e in &catalog.models {
        let (size, status) = if e.bundled.is_some() {
            match bundled_dir(e) {
                Some(d) => (
                    human_bytes(dir_size(&d)),
                    format!("bundled: {}", d.display()),
                ),
                None => ("-".into(), "bundled, but its files are missing".into()),
            }
        } else if let Some(m) = installed.iter().find(|m| m.manifest.name == e.name) {
            (
                human_bytes(m.manifest.size()),
                format!("installed: {}", m.dir.display()),
            )
        } else {
            let (known, all) = e.known_size();
            let size = if all { human_bytes(known) } else { "?".into() };
            let staged = store.staged_bytes(&e.name);
            let status = if staged > 0 {
                format!(
                    "partly downloaded ({}), run download to resume",
                    human_bytes(staged)
                )
            } else {
                "not installed".into()
            };
            (size, status)
        };
        println!(
            "{:<62} {:<14} {:>10}  {status}",
            e.name, e.architecture, size
        );
        println!(
            "    {} · {} · {} Hz, {} ch · licence {}",
            e.description,
            e.sources.join("/"),
            e.sample_rate,
            e.channels,
            e.license
        );
    }
    let others: Vec<_> = installed
        .iter()
        .filter(|m| catalog.get(&m.manifest.name).is_err())
        .collect();
    if !others.is_empty() {
        println!("\nother installed models:");
        for m in others {
            println!(
                "  {:<60} {:>10}  {} ({})",
                m.manifest.name,
                human_bytes(m.manifest.size()),
                m.dir.display(),
                m.manifest.origin
            );
        }
    }
    println!(
        "\ndata folder: {} (set LOCOSEP_DATA_DIR to change it)",
        store.root().display()
    );
    let cites: Vec<&str> = {
        let mut v: Vec<&str> = catalog
            .models
            .iter()
            .map(|e| e.citation.as_str())
            .filter(|c| !c.is_empty())
            .collect();
        v.dedup();
        v
    };
    for c in cites {
        println!("if you use these models, cite: {c}");
    }
    Ok(())
}

fn bar_style(total_known: bool) -> ProgressStyle {
    let template = if total_known {
        "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, eta {eta}"
    } else {
        "{prefix:.bold} {spinner} {bytes} {bytes_per_sec}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn download(
    catalog: &Catalog,
    store: &Store,
    names: &[String],
    opts: &DownloadOptions,
) -> Result<()> {
    let entries: Vec<&ModelEntry> = names
        .iter()
        .map(|n| catalog.get(n))
        .collect::<Result<_, _>>()?;
    let cancel = CancelToken::new();
    {
        let cancel = cancel.clone();
        // A second Ctrl-C while stopping ends the process; part files stay for a resume.
        let _ = ctrlc::set_handler(move || {
            if cancel.is_cancelled() {
                std::process::exit(130);
            }
            cancel.cancel();
            eprintln!("\nstopping; the part downloaded so far is kept for a resume…");
        });
    }
    let mut failures = 0;
    for e in &entries {
        match download_one(store, e, opts, &cancel) {
            Ok(()) => {}
            Err(CatalogError::Cancelled) => {
                eprintln!(
                    "{}: cancelled; {} kept in {}; run the same command to resume",
                    e.name,
                    human_bytes(store.staged_bytes(&e.name)),
                    store.staging_dir(&e.name).display()
                );
                std::process::exit(130);
            }
            Err(err) => {
                failures += 1;
                eprintln!("error: {}: {err}", e.name);
            }
        }
    }
    if failures > 0 {
        bail!("{failures} of {} download(s) failed", entries.len());
    }
    Ok(())
}

fn download_one(
    store: &Store,
    e: &ModelEntry,
    opts: &DownloadOptions,
    cancel: &CancelToken,
) -> Result<(), CatalogError> {
    let mut bar: Option<(String, ProgressBar)> = None;
    let mut on_progress = |p: &DownloadProgress| {
        if bar.as_ref().is_none_or(|(f, _)| f != &p.file) {
            if let Some((_, b)) = bar.take() {
                b.finish();
            }
            let b = ProgressBar::new(p.total.unwrap_or(0));
            b.set_style(bar_style(p.total.is_some()));
            b.set_prefix(format!(
                "{} [{}/{}] {}",
                e.name,
                p.index + 1,
                p.count,
                p.file
            ));
            if p.resumed_from > 0 && p.resumed_from < p.total.unwrap_or(u64::MAX) {
                b.println(format!(
                    "{}: resuming {} at {}",
                    e.name,
                    p.file,
                    human_bytes(p.resumed_from)
                ));
            }
            // Speed and ETA count only this attempt's bytes.
            b.set_position(p.resumed_from);
            b.reset_eta();
            bar = Some((p.file.clone(), b));
        }
        if let Some((_, b)) = &bar {
            if let Some(t) = p.total {
                b.set_length(t);
            }
            b.set_position(p.done);
        }
    };
    let result = download_model(
        store,
        e,
        opts,
        &crate::model::folder::verify_model_dir,
        &mut on_progress,
        cancel,
    );
    if let Some((_, b)) = bar.take() {
        b.finish_and_clear();
    }
    let m = result?;
    println!(
        "{}: installed in {} ({})",
        e.name,
        m.dir.display(),
        human_bytes(m.manifest.size())
    );
    for f in &m.manifest.files {
        let known = e
            .files
            .iter()
            .any(|c| c.path == f.path && c.sha256.is_some());
        if !known {
            eprintln!("  recorded sha256 {}  {}", f.sha256, f.path);
        }
    }
    Ok(())
}

fn add(
    catalog: &Catalog,
    store: &Store,
    folder: &Path,
    name: Option<String>,
    replace: bool,
) -> Result<()> {
    let name = match name {
        Some(n) => n,
        None => folder
            .canonicalize()
            .with_context(|| format!("{}", folder.display()))?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("the folder has no name; pass --name")?,
    };
    let entry = catalog.get(&name).ok();
    if let Some(e) = entry
        && e.bundled.is_some()
    {
        return Err(CatalogError::Bundled(name).into());
    }
    let m = store.import(
        folder,
        &name,
        entry,
        &crate::model::folder::verify_model_dir,
        replace,
    )?;
    println!(
        "{name}: installed in {} ({})",
        m.dir.display(),
        human_bytes(m.manifest.size())
    );
    Ok(())
}
