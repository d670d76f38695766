//! Models on disk, as safetensors: for each layer i, `layers.{i}.weight` of shape [out, in] and
//! `layers.{i}.bias` of shape [out] (torch.nn.Linear's convention), F32 little-endian; a checkpoint adds
//! `optimizer.state`. The architecture, the data schema and the checkpoint's settings are JSON in the
//! metadata key `wgmlp`.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::cpu;
use crate::data::Schema;
use crate::network::{Activation, Loss, Network};
use crate::train::{Optimizer, Schedule, TrainConfig};
use crate::{Error, Result};

/// The metadata key that holds [`Metadata`] as JSON.
pub const METADATA_KEY: &str = "wgmlp";
const FORMAT: &str = "wgmlp-model-1";
const STATE_TENSOR: &str = "optimizer.state";

#[derive(Serialize, Deserialize)]
struct Metadata {
    format: String,
    layers: Vec<usize>,
    hidden_activation: Activation,
    output_activation: Activation,
    loss: Loss,
    schema: Schema,
    checkpoint: Option<Checkpoint>,
}

/// Where training stood when a model was saved, so that it can go on exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub epoch: u64,
    pub lr: f32,
    pub optimizer: Optimizer,
    /// Files saved before schedules existed trained at a constant rate.
    #[serde(default)]
    pub schedule: Schedule,
    pub batch_size: Option<usize>,
    pub shuffle_seed: u64,
    /// The optimizer's state (velocity, or both Adam moments) laid out like the parameters.
    #[serde(skip)]
    pub state: Vec<f32>,
}

impl Checkpoint {
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            lr: self.lr,
            optimizer: self.optimizer,
            schedule: self.schedule,
            batch_size: self.batch_size,
            shuffle_seed: self.shuffle_seed,
        }
    }
}

/// A trained network with what it takes to use it on new data.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub network: Network,
    /// Laid out as [`Network::layout`] says (weights inputs×outputs).
    pub params: Vec<f32>,
    pub schema: Schema,
    pub checkpoint: Option<Checkpoint>,
}

impl Model {
    /// Writes the model atomically: an interrupted save leaves the previous file, never half of a new one.
    /// Parameters that are not finite are refused: such a model could not predict anything.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes(&path.display().to_string())?;
        crate::output::write(path, &bytes)
    }

    /// The safetensors file that [`Model::save`] writes, as bytes; `name` is what an error calls it.
    pub fn to_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let unusable = |reason: String| Error::Model {
            path: name.to_string(),
            reason,
        };
        if let Some(i) = self.params.iter().position(|v| !v.is_finite()) {
            return Err(unusable(format!(
                "parameter {i} is {}: training diverged; try a smaller --lr",
                self.params[i]
            )));
        }
        // What Model::load would refuse is not written.
        self.schema
            .check_fits(&self.network)
            .map_err(|e| unusable(format!("its schema does not fit its network: {e}")))?;
        let layout = self.network.layout();
        let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
        for (i, layer) in layout.layers.iter().enumerate() {
            // Stored inputs×outputs here; torch's Linear keeps [out, in].
            let transposed = transpose(
                &self.params[layer.weight.clone()],
                layer.inputs,
                layer.outputs,
            );
            tensors.push((
                format!("layers.{i}.weight"),
                le_bytes(&transposed),
                vec![layer.outputs, layer.inputs],
            ));
            tensors.push((
                format!("layers.{i}.bias"),
                le_bytes(&self.params[layer.bias.clone()]),
                vec![layer.outputs],
            ));
        }
        if let Some(checkpoint) = &self.checkpoint {
            tensors.push((
                STATE_TENSOR.into(),
                le_bytes(&checkpoint.state),
                vec![checkpoint.state.len()],
            ));
        }
        let metadata = Metadata {
            format: FORMAT.into(),
            layers: self.network.sizes().to_vec(),
            hidden_activation: self.network.hidden_activation(),
            output_activation: self.network.output_activation(),
            loss: self.network.loss(),
            schema: self.schema.clone(),
            checkpoint: self.checkpoint.clone(),
        };
        let json = serde_json::to_string(&metadata)
            .expect("the metadata serialises: it holds no maps with non-string keys");
        let views = tensors
            .iter()
            .map(|(name, bytes, shape)| {
                let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .expect("a tensor's bytes match its shape");
                (name.clone(), view)
            })
            .collect::<Vec<_>>();
        safetensors::serialize(
            views,
            Some(HashMap::from([(METADATA_KEY.to_string(), json)])),
        )
        .map_err(|e| unusable(format!("safetensors cannot hold it: {e}")))
    }

    /// Reads a model that [`Model::save`] wrote, checking every tensor against the metadata.
    pub fn load(path: &Path) -> Result<Model> {
        let bad = |reason: String| Error::Model {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, "read", e))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file, or a truncated one ({e})")))?;
        let json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(METADATA_KEY))
            .ok_or_else(|| {
                bad(format!(
                    "its metadata has no {METADATA_KEY:?} key: it was not saved by this program"
                ))
            })?;
        let metadata: Metadata = serde_json::from_str(json)
            .map_err(|e| bad(format!("its metadata is not readable: {e}")))?;
        if metadata.format != FORMAT {
            return Err(bad(format!(
                "format {:?}, but this program reads {FORMAT:?}",
                metadata.format
            )));
        }
        let tensors = SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("the tensors are not whole ({e})")))?;
        let network = Network::build(
            metadata.layers,
            metadata.hidden_activation,
            metadata.output_activation,
            metadata.loss,
        )
        .map_err(|e| bad(format!("its architecture is not valid: {e}")))?;
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let tensor = tensors
                .tensor(name)
                .map_err(|_| bad(format!("tensor {name} is missing")))?;
            if tensor.dtype() != Dtype::F32 || tensor.shape() != shape {
                return Err(bad(format!(
                    "tensor {name} is {:?} {:?}, but the metadata says F32 {shape:?}",
                    tensor.dtype(),
                    tensor.shape()
                )));
            }
            let values: Vec<f32> = tensor
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(bad(format!(
                    "tensor {name} holds {} at index {i}",
                    values[i]
                )));
            }
            Ok(values)
        };
        let layout = network.layout();
        // Every tensor is read, its shape checked against the metadata, before the parameters are laid out:
        // so what is allocated is bounded by what the file holds, whatever sizes its metadata claims.
        let tensors = layout
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let weight = read(
                    &format!("layers.{i}.weight"),
                    &[layer.outputs, layer.inputs],
                )?;
                Ok((weight, read(&format!("layers.{i}.bias"), &[layer.outputs])?))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut params = vec![0.0; layout.len];
        for (layer, (weight, bias)) in layout.layers.iter().zip(tensors) {
            for o in 0..layer.outputs {
                for j in 0..layer.inputs {
                    params[layer.weight.start + j * layer.outputs + o] =
                        weight[o * layer.inputs + j];
                }
            }
            params[layer.bias.clone()].copy_from_slice(&bias);
        }
        let checkpoint = match metadata.checkpoint {
            Some(mut checkpoint) => {
                let len = layout.len * checkpoint.optimizer.state_per_param();
                checkpoint.state = read(STATE_TENSOR, &[len])?;
                Some(checkpoint)
            }
            None => None,
        };
        metadata
            .schema
            .check_fits(&network)
            .map_err(|e| bad(format!("its schema does not fit its network: {e}")))?;
        Ok(Model {
            network,
            params,
            schema: metadata.schema,
            checkpoint,
        })
    }

    /// The outputs for `rows` rows of inputs, by the CPU's forward pass alone (`cpu::predict`), in the
    /// target's own units (a standardised regression target is scaled back).
    pub fn predict(&self, inputs: &[f32], rows: usize) -> Result<Vec<f32>> {
        let outputs = cpu::predict(&self.network, &self.params, inputs, rows)?;
        Ok(self.schema.in_target_units(outputs))
    }
}

/// The transpose of a rows×cols row-major matrix.
fn transpose(matrix: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| matrix[r * cols + c]))
        .collect()
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
