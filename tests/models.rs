//! Models on disk: the safetensors layout a Python user relies on, exact round trips, and files whose
//! tensors do not match their metadata.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use wgmlp::data::{Schema, Standardize};
use wgmlp::model::{Checkpoint, METADATA_KEY, Model};
use wgmlp::{
    Activation, CpuTrainer, Dataset, Error, Loss, Network, Optimizer, Schedule, TrainConfig,
};

fn trained_model() -> (Model, Vec<f32>, Dataset) {
    let network = Network::build(
        vec![2, 5, 3],
        Activation::Relu,
        Activation::Softmax,
        Loss::Ce,
    )
    .unwrap();
    let data = Dataset {
        rows: 4,
        inputs: vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0],
        targets: vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
    };
    let mut trainer = CpuTrainer::<f32>::new(
        &network,
        &network.init_params(4),
        &data,
        TrainConfig::sgd(0.5),
    )
    .unwrap();
    trainer.train(50);
    let outputs = trainer.outputs();
    let schema = Schema {
        features: vec!["a".into(), "b".into()],
        target: "y".into(),
        classes: Some(vec!["p".into(), "q".into(), "r".into()]),
        standardize: None,
        categories: Default::default(),
        target_standardize: None,
    };
    let model = Model {
        network,
        params: trainer.params().to_vec(),
        schema,
        checkpoint: None,
    };
    (model, outputs, data)
}

/// The safetensors file `bytes` with its `wgmlp` metadata changed by `edit`.
fn with_metadata(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&metadata[METADATA_KEY]).unwrap();
    edit(&mut json);
    metadata.insert(METADATA_KEY.into(), json.to_string());
    let tensors = SafeTensors::deserialize(bytes).unwrap();
    safetensors::serialize(tensors.tensors(), Some(metadata)).unwrap()
}

fn path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "wgmlp-models-{name}-{}.safetensors",
        std::process::id()
    ))
}

#[test]
fn save_then_load_then_predict_is_bit_identical() {
    let (model, outputs, data) = trained_model();
    let file = path("roundtrip");
    model.save(&file).unwrap();
    let loaded = Model::load(&file).unwrap();
    assert_eq!(loaded, model);
    let predicted = loaded.predict(&data.inputs, data.rows).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&predicted), bits(&outputs));
}

#[test]
fn tensors_follow_torch_linear_layout_with_json_metadata() {
    let (model, _, _) = trained_model();
    let file = path("layout");
    model.save(&file).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = tensors.names();
    names.sort();
    assert_eq!(
        names,
        [
            "layers.0.bias",
            "layers.0.weight",
            "layers.1.bias",
            "layers.1.weight"
        ]
    );
    let weight = tensors.tensor("layers.0.weight").unwrap();
    assert_eq!(
        (weight.dtype(), weight.shape()),
        (Dtype::F32, &[5, 2][..]),
        "[out, in]"
    );
    // Element [o][i] of the file is the weight from input i to output o.
    let layer = &model.network.layout().layers[0];
    let stored = f32::from_le_bytes(weight.data()[4 * (3 * 2 + 1)..][..4].try_into().unwrap());
    assert_eq!(
        stored,
        model.params[layer.weight.start + 5 + 3],
        "file [3][1] = ours [1][3]"
    );

    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&header.metadata().as_ref().unwrap()[METADATA_KEY]).unwrap();
    assert_eq!(json["layers"], serde_json::json!([2, 5, 3]));
    assert_eq!(json["hidden_activation"], "relu");
    assert_eq!(json["output_activation"], "softmax");
    assert_eq!(json["loss"], "ce");
    assert_eq!(
        json["schema"]["classes"],
        serde_json::json!(["p", "q", "r"])
    );
}

#[test]
fn tensors_of_other_shapes_than_the_metadata_says_are_rejected() {
    let (model, _, _) = trained_model();
    let file = path("shapes");
    model.save(&file).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let original = SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata: HashMap<String, String> = header.metadata().clone().unwrap();
    // The same tensors, but layer 0's weight stored [2, 5] instead of [5, 2].
    let mut views: Vec<(String, TensorView)> = original.tensors();
    for (name, view) in &mut views {
        if name == "layers.0.weight" {
            *view = TensorView::new(Dtype::F32, vec![2, 5], view.data()).unwrap();
        }
    }
    let reshaped = path("reshaped");
    std::fs::write(
        &reshaped,
        safetensors::serialize(views, Some(metadata)).unwrap(),
    )
    .unwrap();
    let err = Model::load(&reshaped).unwrap_err();
    assert!(matches!(err, Error::Model { .. }), "{err}");
    assert!(
        err.to_string().contains("layers.0.weight") && err.to_string().contains("[5, 2]"),
        "{err}"
    );
}

#[test]
fn a_failed_save_leaves_the_previous_file_whole() {
    let (model, _, _) = trained_model();
    let file = path("atomic");
    model.save(&file).unwrap();
    let before = std::fs::read(&file).unwrap();
    // A save into a missing folder fails without touching anything; a save over the file replaces it whole.
    assert!(
        model
            .save(&std::env::temp_dir().join("wgmlp-no-such-dir/m.safetensors"))
            .is_err()
    );
    model.save(&file).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let leftovers = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_string_lossy().contains("atomic")
                && e.file_name().to_string_lossy().ends_with(".partial")
        })
        .count();
    assert_eq!(leftovers, 0, "no temporary file is left behind");
}

#[test]
fn a_schema_that_does_not_fit_the_network_is_rejected() {
    let (model, _, _) = trained_model();
    let broken = [
        Schema {
            classes: Some(vec!["p".into()]),
            ..model.schema.clone()
        },
        Schema {
            classes: None,
            ..model.schema.clone()
        },
        Schema {
            features: vec!["a".into()],
            ..model.schema.clone()
        },
        Schema {
            standardize: Some(Standardize {
                mean: vec![],
                std: vec![],
            }),
            ..model.schema.clone()
        },
        Schema {
            standardize: Some(Standardize {
                mean: vec![0.0, 0.0],
                std: vec![1.0, 0.0],
            }),
            ..model.schema.clone()
        },
        // A feature named twice would be fed twice; a class named twice could never be told apart.
        Schema {
            features: vec!["a".into(), "a".into()],
            ..model.schema.clone()
        },
        Schema {
            classes: Some(vec!["p".into(), "q".into(), "p".into()]),
            ..model.schema.clone()
        },
        // A text feature takes an input per category; categories of a column that is no feature mean nothing.
        Schema {
            categories: [("b".to_string(), vec!["x".into(), "y".into()])].into(),
            ..model.schema.clone()
        },
        Schema {
            categories: [("z".to_string(), vec!["x".into()])].into(),
            ..model.schema.clone()
        },
        // A classifier's target is a class, never scaled.
        Schema {
            target_standardize: Some(Standardize {
                mean: vec![0.0],
                std: vec![1.0],
            }),
            ..model.schema.clone()
        },
    ];
    let good = path("schema-good");
    model.save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    for (i, schema) in broken.into_iter().enumerate() {
        // save refuses what load would refuse, and writes nothing.
        let file = path(&format!("schema-{i}"));
        let err = Model {
            schema: schema.clone(),
            ..model.clone()
        }
        .save(&file)
        .unwrap_err();
        assert!(err.to_string().contains("schema"), "case {i}: {err}");
        assert!(!file.exists(), "case {i}");
        // A file crafted with the schema is refused on load.
        let crafted = with_metadata(&bytes, |json| {
            json["schema"] = serde_json::to_value(&schema).unwrap()
        });
        std::fs::write(&file, crafted).unwrap();
        let err = Model::load(&file).unwrap_err();
        assert!(
            matches!(err, Error::Model { .. }) && err.to_string().contains("schema"),
            "case {i}: {err}"
        );
    }
}

#[test]
fn parameters_that_are_not_finite_are_not_saved() {
    let (mut model, _, _) = trained_model();
    model.params[3] = f32::NAN;
    let err = model.save(&path("nan")).unwrap_err();
    assert!(
        err.to_string().contains("parameter 3") && err.to_string().contains("--lr"),
        "{err}"
    );
    assert!(!path("nan").exists());
}

#[test]
fn a_checkpoint_keeps_its_schedule_and_one_saved_before_schedules_trained_at_a_constant_rate() {
    let (mut model, _, _) = trained_model();
    let schedule = Schedule::Cosine { horizon: 80 };
    model.checkpoint = Some(Checkpoint {
        epoch: 50,
        lr: 0.5,
        optimizer: Optimizer::Sgd { momentum: 0.0 },
        schedule,
        batch_size: None,
        shuffle_seed: 4,
        state: vec![0.25; model.params.len()],
    });
    let file = path("schedule");
    model.save(&file).unwrap();
    assert_eq!(Model::load(&file).unwrap(), model);

    // The same file as an older version wrote it: no schedule in the checkpoint's settings.
    let older = with_metadata(&std::fs::read(&file).unwrap(), |json| {
        let checkpoint = json["checkpoint"].as_object_mut().unwrap();
        let schedule = checkpoint.remove("schedule").unwrap();
        assert_eq!(
            schedule,
            serde_json::json!({"name": "cosine", "horizon": 80})
        );
    });
    std::fs::write(&file, older).unwrap();
    let old = Model::load(&file).unwrap().checkpoint.unwrap();
    assert_eq!(old.schedule, Schedule::Constant);
    assert_eq!(old.epoch, 50);
}
