//! The "Get models…" window: the catalog (name, size, licence, what it is for, installed or
//! not) with Download, progress, Cancel and Remove.
//!
//! It talks to a download worker only through [`ModelsRequest`]/[`ModelsEvent`] channels
//! ([`spawn_worker`] runs the real one on a named thread; tests hold the other ends). Buttons
//! push a [`Msg`] that is applied after the rows are drawn.

use crate::cancel::CancelToken;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};

use eframe::egui;

use crate::catalog::{Catalog, CatalogError, DownloadOptions, Store, bundled_dir, download_model};

/// What the window asks the worker to do.
#[derive(Debug, Clone)]
pub enum ModelsRequest {
    /// Download (or resume) a catalog model; stop when `cancel` becomes true.
    Download {
        /// Catalog name.
        name: String,
        /// Set by the window's Cancel button.
        cancel: CancelToken,
    },
    /// Remove an installed model.
    Remove {
        /// Catalog name.
        name: String,
    },
}

/// What the worker reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelsEvent {
    /// Bytes of the file being fetched.
    Progress {
        /// Catalog name.
        name: String,
        /// The file being fetched.
        file: String,
        /// Bytes done of that file.
        done: u64,
        /// Its size when known.
        total: Option<u64>,
    },
    /// The model is installed.
    Installed {
        /// Catalog name.
        name: String,
        /// Its folder.
        dir: PathBuf,
    },
    /// The download was cancelled (the part is kept for a resume).
    Cancelled {
        /// Catalog name.
        name: String,
    },
    /// Download or removal failed.
    Failed {
        /// Catalog name.
        name: String,
        /// The message to show.
        error: String,
    },
    /// The model was removed.
    Removed {
        /// Catalog name.
        name: String,
    },
}

/// Where a row stands.
#[derive(Debug, Clone, PartialEq)]
pub enum RowState {
    /// Shipped with locosep.
    Bundled,
    /// Can be downloaded (`partial` bytes already on disk from an interrupted download).
    Available {
        /// Bytes kept from an earlier attempt.
        partial: u64,
    },
    /// Download running.
    Downloading {
        /// The file being fetched.
        file: String,
        /// Bytes done of that file.
        done: u64,
        /// Its size when known.
        total: Option<u64>,
        /// Cancel was pressed.
        cancelling: bool,
    },
    /// Installed in this folder.
    Installed(PathBuf),
    /// The last attempt failed.
    Failed(String),
}

/// One catalog entry as the window shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    /// Catalog name.
    pub name: String,
    /// What it is good for.
    pub description: String,
    /// SPDX licence.
    pub license: String,
    /// Download size when known.
    pub size: Option<u64>,
    /// State.
    pub state: RowState,
}

/// A button press, applied after drawing.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// Start (or resume) the download of this row.
    Download(String),
    /// Stop it.
    Cancel(String),
    /// Remove the installed model.
    Remove(String),
}

/// A model that joined or left the installed set (the app updates its model list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChange {
    /// Installed in this folder.
    Installed(PathBuf),
    /// Removed from this folder.
    Removed(PathBuf),
}

/// The window.
pub struct ModelsWindow {
    /// Whether the window is shown.
    pub open: bool,
    /// The rows, in catalog order.
    pub rows: Vec<ModelRow>,
    requests: Sender<ModelsRequest>,
    events: Receiver<ModelsEvent>,
    cancels: HashMap<String, CancelToken>,
    changes: Vec<ModelChange>,
}

impl ModelsWindow {
    /// A window over `rows`, talking to a worker through the two channel ends.
    pub fn new(
        rows: Vec<ModelRow>,
        requests: Sender<ModelsRequest>,
        events: Receiver<ModelsEvent>,
    ) -> Self {
        Self {
            open: false,
            rows,
            requests,
            events,
            cancels: HashMap::new(),
            changes: vec![],
        }
    }

    /// The catalog's rows with what `store` has installed or partly downloaded.
    pub fn rows_from(catalog: &Catalog, store: &Store) -> Vec<ModelRow> {
        catalog
            .models
            .iter()
            .map(|e| {
                let state = if e.bundled.is_some() {
                    RowState::Bundled
                } else if let Some(m) = store.get(&e.name) {
                    RowState::Installed(m.dir)
                } else {
                    RowState::Available {
                        partial: store.staged_bytes(&e.name),
                    }
                };
                let (size, all) = e.known_size();
                ModelRow {
                    name: e.name.clone(),
                    description: e.description.clone(),
                    license: e.license.clone(),
                    size: all.then_some(size),
                    state,
                }
            })
            .filter(|r| r.state != RowState::Bundled || bundled_dir_known(catalog, &r.name))
            .collect()
    }

    /// Applies the worker's events; true when something changed.
    pub fn poll(&mut self) -> bool {
        let mut changed = false;
        while let Ok(ev) = self.events.try_recv() {
            changed = true;
            let (name, state) = match ev {
                ModelsEvent::Progress {
                    name,
                    file,
                    done,
                    total,
                } => {
                    let cancelling = self.cancels.get(&name).is_some_and(|c| c.is_cancelled());
                    (
                        name,
                        RowState::Downloading {
                            file,
                            done,
                            total,
                            cancelling,
                        },
                    )
                }
                ModelsEvent::Installed { name, dir } => {
                    self.cancels.remove(&name);
                    self.changes.push(ModelChange::Installed(dir.clone()));
                    (name, RowState::Installed(dir))
                }
                ModelsEvent::Cancelled { name } => {
                    self.cancels.remove(&name);
                    (name, RowState::Available { partial: 0 })
                }
                ModelsEvent::Failed { name, error } => {
                    self.cancels.remove(&name);
                    (name, RowState::Failed(error))
                }
                ModelsEvent::Removed { name } => {
                    let old = self.rows.iter().find(|r| r.name == name);
                    if let Some(RowState::Installed(dir)) = old.map(|r| &r.state) {
                        self.changes.push(ModelChange::Removed(dir.clone()));
                    }
                    (name, RowState::Available { partial: 0 })
                }
            };
            if let Some(row) = self.rows.iter_mut().find(|r| r.name == name) {
                row.state = state;
            }
        }
        changed
    }

    /// Models installed or removed since the last call.
    pub fn take_changes(&mut self) -> Vec<ModelChange> {
        std::mem::take(&mut self.changes)
    }

    /// Whether a download is running (the caller keeps repainting while one is).
    pub fn busy(&self) -> bool {
        self.rows
            .iter()
            .any(|r| matches!(r.state, RowState::Downloading { .. }))
    }

    /// Shows the window when open.
    pub fn show(&mut self, ctx: &egui::Context) {
        self.poll();
        let mut open = self.open;
        egui::Window::new("Get models")
            .open(&mut open)
            .default_width(720.0)
            .show(ctx, |ui| self.ui(ui));
        self.open = open;
    }

    /// The window's contents.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.poll();
        ui.label(
            "The bundled demo model is trained on synthetic songs: use it to try locosep. \
             For real music, download one of the MUSDB18-HQ models below \
             (bass, drums, vocals, other).",
        );
        ui.separator();
        let mut msgs = vec![];
        egui::ScrollArea::vertical().show(ui, |ui| {
            for row in &self.rows {
                row_ui(ui, row, &mut msgs);
                ui.separator();
            }
        });
        ui.small(
            "mixit-mss models: MIT licence; cite Saijo & Bando, WASPAA 2025 \
             (\"Is MixIT Really Unsuitable for Correlated Sources?\").",
        );
        for m in msgs {
            self.apply(m);
        }
    }

    /// Carries out one button press.
    pub fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Download(name) => {
                let cancel = CancelToken::new();
                self.cancels.insert(name.clone(), cancel.clone());
                let sent = self.requests.send(ModelsRequest::Download {
                    name: name.clone(),
                    cancel,
                });
                let state = match sent {
                    Ok(()) => RowState::Downloading {
                        file: String::new(),
                        done: 0,
                        total: None,
                        cancelling: false,
                    },
                    Err(_) => RowState::Failed("the download worker has stopped".into()),
                };
                if let Some(row) = self.rows.iter_mut().find(|r| r.name == name) {
                    row.state = state;
                }
            }
            Msg::Cancel(name) => {
                if let Some(c) = self.cancels.get(&name) {
                    c.cancel();
                }
                if let Some(row) = self.rows.iter_mut().find(|r| r.name == name)
                    && let RowState::Downloading { cancelling, .. } = &mut row.state
                {
                    *cancelling = true;
                }
            }
            Msg::Remove(name) => {
                let sent = self
                    .requests
                    .send(ModelsRequest::Remove { name: name.clone() });
                if sent.is_err()
                    && let Some(row) = self.rows.iter_mut().find(|r| r.name == name)
                {
                    row.state = RowState::Failed("the download worker has stopped".into());
                }
            }
        }
    }
}

fn bundled_dir_known(catalog: &Catalog, name: &str) -> bool {
    catalog.get(name).ok().and_then(bundled_dir).is_some()
}

fn human_bytes(n: u64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / MIB)
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}

fn row_ui(ui: &mut egui::Ui, row: &ModelRow, msgs: &mut Vec<Msg>) {
    ui.horizontal(|ui| {
        ui.strong(&row.name);
        let size = row
            .size
            .map(human_bytes)
            .unwrap_or_else(|| "size unknown".into());
        ui.weak(format!("{size} · {}", row.license));
    });
    ui.label(&row.description);
    ui.horizontal(|ui| match &row.state {
        RowState::Bundled => {
            ui.label("Bundled (always installed)");
        }
        RowState::Available { partial } => {
            let text = if *partial > 0 {
                format!("Resume download ({} kept)", human_bytes(*partial))
            } else {
                "Download".to_string()
            };
            if ui.button(text).clicked() {
                msgs.push(Msg::Download(row.name.clone()));
            }
        }
        RowState::Downloading {
            file,
            done,
            total,
            cancelling,
        } => {
            let frac = total
                .filter(|&t| t > 0)
                .map(|t| (*done as f32 / t as f32).clamp(0.0, 1.0));
            ui.add(
                egui::ProgressBar::new(frac.unwrap_or(0.0))
                    // No animation: the worker's events repaint, an idle window stays idle.
                    .desired_width(220.0),
            );
            let amount = match total {
                Some(t) => format!("{} / {}", human_bytes(*done), human_bytes(*t)),
                None => human_bytes(*done),
            };
            ui.label(format!("{file} {amount}"));
            if *cancelling {
                ui.label("Cancelling…");
            } else if ui.button("Cancel").clicked() {
                msgs.push(Msg::Cancel(row.name.clone()));
            }
        }
        RowState::Installed(dir) => {
            ui.label(format!("Installed in {}", dir.display()));
            if ui.button("Remove").clicked() {
                msgs.push(Msg::Remove(row.name.clone()));
            }
        }
        RowState::Failed(error) => {
            ui.colored_label(ui.visuals().error_fg_color, format!("Failed: {error}"));
            if ui.button("Retry").clicked() {
                msgs.push(Msg::Download(row.name.clone()));
            }
        }
    });
}

/// Runs the real downloads on a named thread: requests in, events out; `notify` is called
/// after every event (the app passes `ctx.request_repaint`). `verify` decides whether a
/// downloaded folder holds a model that loads.
pub fn spawn_worker(
    store: Store,
    catalog: Catalog,
    options: DownloadOptions,
    verify: fn(&Path) -> Result<(), String>,
    notify: impl Fn() + Send + 'static,
) -> std::io::Result<(Sender<ModelsRequest>, Receiver<ModelsEvent>)> {
    let (req_tx, req_rx) = channel::<ModelsRequest>();
    let (ev_tx, ev_rx) = channel::<ModelsEvent>();
    std::thread::Builder::new()
        .name("locosep-downloads".into())
        .spawn(move || {
            let send = |ev: ModelsEvent| {
                let _ = ev_tx.send(ev);
                notify();
            };
            for req in req_rx {
                match req {
                    ModelsRequest::Download { name, cancel } => {
                        let result = catalog.get(&name).cloned().and_then(|entry| {
                            download_model(
                                &store,
                                &entry,
                                &options,
                                &verify,
                                &mut |p| {
                                    send(ModelsEvent::Progress {
                                        name: name.clone(),
                                        file: p.file.clone(),
                                        done: p.done,
                                        total: p.total,
                                    })
                                },
                                &cancel,
                            )
                        });
                        send(match result {
                            Ok(m) => ModelsEvent::Installed { name, dir: m.dir },
                            Err(CatalogError::Cancelled) => ModelsEvent::Cancelled { name },
                            Err(e) => ModelsEvent::Failed {
                                name,
                                error: e.to_string(),
                            },
                        });
                    }
                    ModelsRequest::Remove { name } => send(match store.remove(&name) {
                        Ok(_) => ModelsEvent::Removed { name },
                        Err(e) => ModelsEvent::Failed {
                            name,
                            error: e.to_string(),
                        },
                    }),
                }
            }
        })?;
    Ok((req_tx, ev_rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable;

    const NAME: &str = "sup.musdb18hq.bslocoformer-small";

    fn rows() -> Vec<ModelRow> {
        vec![
            ModelRow {
                name: "demo".into(),
                description: "Tiny demo model for synthetic songs".into(),
                license: "MIT OR Apache-2.0".into(),
                size: Some(900_000),
                state: RowState::Bundled,
            },
            ModelRow {
                name: NAME.into(),
                description: "BS-Locoformer small".into(),
                license: "MIT".into(),
                size: None,
                state: RowState::Available { partial: 0 },
            },
        ]
    }

    /// The fake downloader: the test holds the worker's ends of the channels.
    fn harness() -> (
        Harness<'static, ModelsWindow>,
        Receiver<ModelsRequest>,
        Sender<ModelsEvent>,
    ) {
        let (req_tx, req_rx) = channel();
        let (ev_tx, ev_rx) = channel();
        let window = ModelsWindow::new(rows(), req_tx, ev_rx);
        let h = Harness::new_ui_state(|ui, w: &mut ModelsWindow| w.ui(ui), window);
        (h, req_rx, ev_tx)
    }

    #[test]
    fn lists_the_catalog_and_says_what_the_demo_is_for() {
        let (mut h, _req, _ev) = harness();
        h.run();
        h.get_by_label(NAME);
        h.get_by_label("demo");
        h.get_by_label("Bundled (always installed)");
        h.get_by_label_contains("trained on synthetic songs");
        h.get_by_label_contains("size unknown · MIT");
        h.get_by_label("Download");
    }

    #[test]
    fn download_progress_cancel_and_install() {
        let (mut h, req, ev) = harness();
        h.run();
        h.get_by_label("Download").click();
        h.run();
        let cancel = match req.try_recv().expect("a download request") {
            ModelsRequest::Download { name, cancel } => {
                assert_eq!(name, NAME);
                cancel
            }
            other => panic!("unexpected {other:?}"),
        };
        ev.send(ModelsEvent::Progress {
            name: NAME.into(),
            file: "checkpoints/model.pth".into(),
            done: 3 << 20,
            total: Some(6 << 20),
        })
        .unwrap();
        h.run();
        h.get_by_label("checkpoints/model.pth 3.0 MiB / 6.0 MiB");
        assert!(h.state().busy());
        h.get_by_label("Cancel").click();
        h.run();
        assert!(cancel.is_cancelled(), "Cancel sets the token");
        h.get_by_label("Cancelling…");
        ev.send(ModelsEvent::Cancelled { name: NAME.into() })
            .unwrap();
        h.run();
        h.get_by_label("Download");
        assert!(!h.state().busy());

        // Again, to the end.
        h.get_by_label("Download").click();
        h.run();
        assert!(matches!(req.try_recv(), Ok(ModelsRequest::Download { .. })));
        ev.send(ModelsEvent::Installed {
            name: NAME.into(),
            dir: PathBuf::from("/data/models").join(NAME),
        })
        .unwrap();
        h.run();
        h.get_by_label_contains("Installed in /data/models/");
        let dir = PathBuf::from("/data/models").join(NAME);
        assert_eq!(
            h.state_mut().take_changes(),
            [ModelChange::Installed(dir.clone())]
        );
        h.get_by_label("Remove").click();
        h.run();
        assert!(matches!(req.try_recv(), Ok(ModelsRequest::Remove { name }) if name == NAME));
        ev.send(ModelsEvent::Removed { name: NAME.into() }).unwrap();
        h.run();
        h.get_by_label("Download");
        assert_eq!(h.state_mut().take_changes(), [ModelChange::Removed(dir)]);
    }

    #[test]
    fn a_failure_is_shown_with_a_retry() {
        let (mut h, req, ev) = harness();
        h.run();
        h.get_by_label("Download").click();
        h.run();
        let _ = req.try_recv();
        ev.send(ModelsEvent::Failed {
            name: NAME.into(),
            error: "not found on the server (HTTP 404)".into(),
        })
        .unwrap();
        h.run();
        h.get_by_label_contains("Failed: not found on the server (HTTP 404)");
        h.get_by_label("Retry").click();
        h.run();
        assert!(matches!(req.try_recv(), Ok(ModelsRequest::Download { .. })));
    }

    #[test]
    fn the_worker_downloads_reports_progress_and_removes() {
        use crate::catalog::test_http_server::Server;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("srv/models/sup").join(NAME);
        std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bslocoformer/mixit-small");
        for f in ["merged_config.yaml", "checkpoints/model.pth"] {
            std::fs::copy(fixture.join(f), dir.join(f)).unwrap();
        }
        let server = Server::start(&tmp.path().join("srv"));
        let store = Store::new(tmp.path().join("data"));
        let options = DownloadOptions {
            mirror: Some(server.base.clone()),
            proxy: crate::catalog::ProxyChoice::Direct,
            ..Default::default()
        };
        let (tx, rx) = spawn_worker(
            store.clone(),
            Catalog::builtin().unwrap(),
            options,
            |d| {
                d.join("checkpoints/model.pth")
                    .is_file()
                    .then_some(())
                    .ok_or_else(|| "no weights".to_string())
            },
            || {},
        )
        .unwrap();
        let next = || rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
        tx.send(ModelsRequest::Download {
            name: NAME.into(),
            cancel: CancelToken::new(),
        })
        .unwrap();
        let mut progress = 0;
        let installed = loop {
            match next() {
                ModelsEvent::Progress { .. } => progress += 1,
                ModelsEvent::Installed { name, dir } => break (name, dir),
                other => panic!("unexpected {other:?}"),
            }
        };
        assert!(progress > 2);
        assert_eq!(installed, (NAME.to_string(), store.model_dir(NAME)));
        tx.send(ModelsRequest::Remove { name: NAME.into() })
            .unwrap();
        assert_eq!(next(), ModelsEvent::Removed { name: NAME.into() });
        assert!(store.get(NAME).is_none());
        // A failure comes back as an event, not a dead worker.
        tx.send(ModelsRequest::Download {
            name: "no-such-model".into(),
            cancel: CancelToken::new(),
        })
        .unwrap();
        assert!(
            matches!(next(), ModelsEvent::Failed { error, .. } if error.contains("unknown model"))
        );
    }

    #[test]
    fn rows_come_from_the_catalog_and_the_store() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let rows = ModelsWindow::rows_from(&Catalog::builtin().unwrap(), &store);
        assert_eq!(
            rows.iter().filter(|r| r.state == RowState::Bundled).count(),
            1
        );
        assert_eq!(
            rows.iter()
                .filter(|r| r.state == RowState::Available { partial: 0 })
                .count(),
            9
        );
    }
}
