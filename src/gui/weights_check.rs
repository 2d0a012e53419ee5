//! Checks picked weights against the model they are for, off the UI thread, with the loader's
//! own check ([`check_keys`], what `model-check`, the model catalog and Separate use), and
//! words a mismatch in one line ("these weights are for a model with 32 channels; the preset
//! `small` has 48"), the loader's full list going behind the notice's "details".

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};

use super::notices::Notice;
use crate::model::config::ModelConfig;
use crate::model::loader::{KeyMismatch, check_keys};
use crate::model::state_dict::{StateDict, load_state_dict};

/// What picked weights are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsFor {
    /// A built-in preset.
    Preset(String),
    /// An imported config file.
    Import {
        /// The config file.
        config: PathBuf,
    },
}

/// The answer of a check.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// What the weights were picked for.
    pub target: WeightsFor,
    /// The weight file.
    pub checkpoint: PathBuf,
    /// `Ok` when every tensor is there, of the right shape and finite.
    pub result: Result<(), Notice>,
}

/// Checks `checkpoint` against `config` on a thread; the verdict arrives on the receiver, and
/// `notify` is called after it is sent (the GUI passes `ctx.request_repaint`).
pub fn spawn(
    target: WeightsFor,
    config: ModelConfig,
    checkpoint: PathBuf,
    notify: impl Fn() + Send + 'static,
) -> Receiver<Verdict> {
    let (tx, rx) = channel();
    let what = match &target {
        WeightsFor::Preset(name) => format!("the preset `{name}`"),
        WeightsFor::Import { .. } => format!("the config `{}`", config.name),
    };
    let run = move || {
        let result = check(&config, &what, &checkpoint);
        // A closed receiver: the app is gone, nobody waits for the answer.
        let _ = tx.send(Verdict {
            target,
            checkpoint,
            result,
        });
        notify();
    };
    if let Err(e) = std::thread::Builder::new()
        .name("locosep-weights-check".into())
        .spawn(run)
    {
        // No thread: the receiver reports a disconnect, which the app words itself.
        eprintln!("warning: cannot start the weights check: {e}");
    }
    rx
}

/// Reads `checkpoint` and checks it against `config`; `what` names the model in the summary
/// (e.g. "the preset `small`").
pub fn check(config: &ModelConfig, what: &str, checkpoint: &Path) -> Result<(), Notice> {
    let sd = load_state_dict(checkpoint)
        .map_err(|e| Notice::from_text(&format!("cannot read {}: {e}", checkpoint.display())))?;
    check_keys(config, &sd).map_err(|m| {
        Notice::new(
            format!(
                "{} does not fit {what}: {}",
                file_name(checkpoint),
                summary(config, what, &sd, &m)
            ),
            Some(m.to_string()),
        )
    })
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Blocks (layers) a state dict holds: distinct `blocks.<i>.` prefixes.
fn layers_in(sd: &StateDict) -> usize {
    sd.keys()
        .filter_map(|k| {
            k.strip_prefix("blocks.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .collect::<BTreeSet<_>>()
        .len()
}

/// One line about a mismatch: the channel and layer counts the weights were made for when they
/// differ from the config's, else how many tensors are missing, unexpected or misshapen.
fn summary(config: &ModelConfig, what: &str, sd: &StateDict, m: &KeyMismatch) -> String {
    if m.missing.is_empty() && m.unexpected.is_empty() && m.mismatched.is_empty() {
        // Only non-finite values: the loader's own headline says it in one line.
        return m.to_string();
    }
    // A per-channel vector (a norm's gain, shape [C]) gives the weights' channel count.
    let channels = m
        .mismatched
        .iter()
        .find(|(_, want, got)| want.len() == 1 && want[0] == config.emb_dim && got.len() == 1)
        .map(|(_, _, got)| got[0]);
    let layers = Some(layers_in(sd)).filter(|&n| n > 0 && n != config.n_layers);
    let mut theirs = Vec::new();
    let mut ours = Vec::new();
    if let Some(c) = channels {
        theirs.push(format!("{c} channels"));
        ours.push(format!("{} channels", config.emb_dim));
    }
    if let Some(l) = layers {
        theirs.push(format!("{l} layers"));
        ours.push(format!("{} layers", config.n_layers));
    }
    if theirs.is_empty() {
        return format!(
            "{} tensor(s) missing, {} unexpected, {} of the wrong shape (a different kind of \
             model)",
            m.missing.len(),
            m.unexpected.len(),
            m.mismatched.len()
        );
    }
    format!(
        "these weights are for a model with {}; the {} has {}",
        theirs.join(" and "),
        if what.starts_with("the preset") {
            "preset"
        } else {
            "config"
        },
        ours.join(" and ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::preset;
    use crate::model::loader::init_state_dict;
    use crate::model::state_dict::write_safetensors;

    #[test]
    fn the_demo_weights_do_not_fit_small_and_say_why_in_one_line() {
        let small = preset("small").unwrap().config;
        let (_, demo, _) = crate::assets::default_model().expect("bundled model");
        let err = check(&small, "the preset `small`", &demo).unwrap_err();
        assert!(!err.summary.contains('\n'), "{}", err.summary);
        assert!(
            err.summary.contains("channels") && err.summary.contains("the preset has 48"),
            "{}",
            err.summary
        );
        assert!(err.details.is_some_and(|d| d.contains("wrong shape")));
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("small.safetensors");
        write_safetensors(&good, &init_state_dict(&small, 1), None, false).unwrap();
        check(&small, "the preset `small`", &good).unwrap();
    }
}
