//! Presets, imports and validation of model configs.

use super::*;

#[test]
fn every_builtin_preset_parses() {
    for (name, text) in BUILTIN_PRESETS {
        ModelConfig::from_toml_str(text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_eq!(builtin_presets().len(), BUILTIN_PRESETS.len());
}

#[test]
fn preset_param_counts_match_architecture_table() {
    // ARCHITECTURE.md table (mono).
    let want = [
        ("small", 1.39e6),
        ("ultra-safe", 7.40e6),
        ("memory-optimized", 19.7e6),
        ("balanced", 59.1e6),
        ("xlarge", 157e6),
    ];
    for (name, n) in want {
        let got = preset(name).unwrap().config.param_count() as f64;
        assert!((got - n).abs() / n < 0.005, "{name}: {got} vs {n}");
    }
}

#[test]
fn fixture_json_configs_import() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tflocoformer");
    let mss = ModelConfig::from_file(&root.join("mss-tiny/config.json")).unwrap();
    assert_eq!(
        (mss.n_fft, mss.hop_length, mss.emb_dim, mss.n_heads),
        (256, 64, 16, 2)
    );
    assert_eq!(mss.sources, vec!["vocals", "drums", "bass", "other"]);
    let sep = ModelConfig::from_file(&root.join("tiny-separator/config.json")).unwrap();
    assert_eq!(sep.n_sources(), 2);
    assert_eq!(sep.ffn_hidden_dim, vec![48, 48]);
}

#[test]
fn fork_yaml_and_espnet_yaml_import() {
    let fork = "dataset:\n  sample_rate: 44100\n  segment_length: 88200\nmodel:\n  n_fft: 1024\n  \
                hop_length: 256\n  n_sources: 4\n  n_layers: 3\n  emb_dim: 48\n  norm_type: \
                rmsgroupnorm\n  num_groups: 4\n  tf_order: ft\n  n_heads: 4\n  attention_dim: 48\n  \
                pos_enc: rope\n  ffn_type:\n    - swiglu_conv1d\n    - swiglu_conv1d\n  \
                ffn_hidden_dim:\n    - 192\n    - 192\n  conv1d_kernel: 4\n  conv1d_shift: 1\n  \
                dropout: 0.1\n  eps: 1.0e-5\n";
    let c = ModelConfig::from_yaml_str(fork, "fork").unwrap();
    assert_eq!(c.segment_seconds, 2.0);
    assert_eq!(
        c.param_count(),
        preset("small").unwrap().config.param_count()
    );
    let espnet = "num_spk: &num_spk 2\nencoder: stft\nencoder_conf:\n  n_fft: 256\n  hop_length: 128\n\
                  separator: tflocoformer\nseparator_conf:\n  num_spk: *num_spk\n  n_layers: 4\n  \
                  emb_dim: 96\n  ffn_type:\n    - swiglu_conv1d\n    - swiglu_conv1d\n  \
                  ffn_hidden_dim:\n    - 128\n    - 128\n  conv1d_kernel: 8\n";
    let e = ModelConfig::from_yaml_str(espnet, "espnet").unwrap();
    assert_eq!(
        (e.n_fft, e.hop_length, e.n_sources(), e.conv1d_kernel),
        (256, 128, 2, 8)
    );
    assert_eq!(e.attention_dim, 128, "reference default");
    assert_eq!(e.input_norm, InputNorm::Std);
}

#[test]
fn band_split_presets_and_fixture_configs_resolve() {
    let small = preset("bs-small").unwrap().config;
    assert_eq!(small.freq_len(), 62);
    assert_eq!(small.audio_channels, 2);
    assert_eq!(small.sources, vec!["bass", "drums", "vocals", "other"]);
    assert!(matches!(small.pipeline, Pipeline::Css(c) if c.segment_seconds == 12.0));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bslocoformer");
    let mono = ModelConfig::from_file(&root.join("bs-mono-mask/config.json")).unwrap();
    let bs = mono.band_split().expect("stft_size makes it a BS model");
    assert_eq!(
        (bs.flavour, bs.masking, bs.bands.len()),
        (BsFlavour::Merl, true, 62)
    );
    assert_eq!(
        (mono.n_fft, mono.hop_length, mono.audio_channels),
        (2048, 512, 1)
    );
    let st = ModelConfig::from_file(&root.join("bs-stereo-map/config.json")).unwrap();
    assert_eq!(st.audio_channels, 2);
    assert!(!st.band_split().unwrap().masking);
    let mixit = ModelConfig::from_file(&root.join("mixit-small/merged_config.yaml")).unwrap();
    assert_eq!(mixit.name, "mixit-small");
    assert_eq!(mixit.pos_enc, PosEnc::Nope);
    assert_eq!(mixit.conv1d_kernel, 8);
}

#[test]
fn reference_json_round_trips() {
    for p in builtin_presets() {
        let back = ModelConfig::from_json_str(&p.config.to_reference_json(), &p.name).unwrap();
        assert_eq!(back, p.config);
    }
}

#[test]
fn bad_values_are_explained() {
    let err = ModelConfig::from_json_str(r#"{"emb_dim": 30, "num_groups": 4}"#, "x").unwrap_err();
    assert!(err.to_string().contains("multiple of num_groups"), "{err}");
    let err = ModelConfig::from_json_str(r#"{"norm_type": "batchnorm"}"#, "x").unwrap_err();
    assert!(err.to_string().contains("batchnorm"), "{err}");
    let ln = ModelConfig::from_json_str(r#"{"norm_type": "layernorm"}"#, "x").unwrap();
    assert_eq!(ln.norm_type, NormType::LayerNorm);
    // Numbers without bounds are refused with the value and its range.
    for (json, what) in [
        (r#"{"n_sources": 1000000000}"#, "1..=64"),
        (r#"{"eps": -1}"#, "eps"),
        (r#"{"n_layers": 1000000}"#, "n_layers"),
        (r#"{"emb_dim": 0, "num_groups": 1}"#, "emb_dim"),
        (r#"{"hop_length": 1}"#, "hop_length"),
        (r#"{"n_fft": 1073741824}"#, "n_fft"),
        (r#"{"sample_rate": 4294967295}"#, "sample_rate"),
    ] {
        let err = ModelConfig::from_json_str(json, "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains(what), "{json}: {err}");
    }
    let err = preset("nope").unwrap_err();
    assert!(err.to_string().contains("small"), "{err}");
}
