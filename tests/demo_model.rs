//! The bundled default model against the bundled demo song (a synthetic song whose seed is not
//! in the model's training set): its stems must beat the mixture-as-estimate baseline on
//! every stem, in museval SDR over the middle 8 s. This is what `make run` prints.

use std::path::Path;

use locosep::engine::device::{DeviceChoice, resolve};
use locosep::engine::separator::Separator;
use locosep::model::config::ModelConfig;
use locosep::model::state_dict::load_state_dict;
use locosep::train::dataset::scan;
use locosep::train::eval::{evaluate_estimates, evaluate_model};

#[test]
fn default_model_beats_the_mixture_on_the_held_out_demo_song() {
    let (config, weights, what) = locosep::assets::default_model().expect("a bundled model");
    assert!(
        what.contains("demo model"),
        "the default model should be the trained demo model, found: {what}"
    );
    let cfg = ModelConfig::from_file(&config).unwrap();
    let sd = load_state_dict(&weights).unwrap();
    let sep = Separator::new(cfg, &sd, resolve(DeviceChoice::Cpu).unwrap()).unwrap();
    let tracks = scan(&Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo")).unwrap();
    let model = evaluate_model(&sep, &tracks, 8.0, &mut |_| {}).unwrap();
    let mixture = evaluate_estimates(&tracks, None, 8.0, 44_100).unwrap();
    eprint!("{}", model.improvement_table(&mixture));
    for (stem, score) in &model.summary {
        let base = mixture.summary[stem].sdr;
        assert!(
            score.sdr > base,
            "{stem}: {:.2} dB does not beat the mixture's {base:.2} dB",
            score.sdr
        );
    }
}
