//! Choosing where the model runs: a wgpu adapter (Vulkan/Metal/DX12) or burn's `flex` CPU
//! backend.

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::tensor::{Device, Tensor};

/// What the user asked for (`--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A hardware GPU when one exists, otherwise the CPU backend.
    #[default]
    Auto,
    /// A wgpu adapter (software adapters such as lavapipe count, with a warning); an error
    /// when there is none.
    Gpu,
    /// burn's `flex` CPU backend.
    Cpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "gpu" | "wgpu" => Ok(Self::Gpu),
            "cpu" | "flex" => Ok(Self::Cpu),
            other => Err(format!("unknown device `{other}`; use auto, gpu or cpu")),
        }
    }
}

/// A wgpu adapter as seen by burn.
#[derive(Debug, Clone)]
pub struct AdapterInfo {
    /// Adapter name, e.g. `NVIDIA H100 PCIe` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// False for software rasterizers (lavapipe/llvmpipe), which have no physical card.
    pub hardware: bool,
}

/// The device a job runs on, with a human description.
#[derive(Debug, Clone)]
pub struct ResolvedDevice {
    /// The burn device.
    pub device: Device,
    /// True when this is a wgpu device (the fused attention kernel applies).
    pub is_wgpu: bool,
    /// What to tell the user, e.g. `GPU: NVIDIA H100 (wgpu)` or `CPU (flex, 2 threads)`.
    pub description: String,
    /// Warnings worth printing (software adapter, fallback taken, …).
    pub warnings: Vec<String>,
}

/// Errors of device selection.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// `--device gpu` without any adapter.
    #[error(
        "no GPU adapter found (wgpu sees no Vulkan, Metal or DX12 device). Install your GPU's \
         Vulkan driver (on Debian: mesa-vulkan-drivers for AMD/Intel, the NVIDIA driver for \
         NVIDIA) or run with --device cpu"
    )]
    NoAdapter,
}

/// Lists the wgpu adapters, never panicking (a missing Vulkan loader is "no adapters").
pub fn wgpu_adapters() -> Vec<(Device, AdapterInfo)> {
    let found = catch_unwind(AssertUnwindSafe(|| {
        Device::enumerate(burn::tensor::DeviceType::Wgpu)
            .into_iter()
            .filter_map(|device| {
                let id = device.identity()?;
                Some((
                    device,
                    AdapterInfo {
                        name: id.name,
                        hardware: id.physical.is_some(),
                    },
                ))
            })
            .collect::<Vec<_>>()
    }));
    found.unwrap_or_default()
}

/// Checks that a device can run a tiny op (catches adapters that enumerate but fail).
fn works(device: &Device) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        let t = Tensor::<1>::from_floats([1.0, 2.0], device);
        let v: Vec<f32> = t
            .mul_scalar(2.0)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        v == [2.0, 4.0]
    }))
    .unwrap_or(false)
}

fn cpu(warnings: Vec<String>) -> ResolvedDevice {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    ResolvedDevice {
        device: Device::flex(),
        is_wgpu: false,
        description: format!("CPU (burn flex, {threads} threads)"),
        warnings,
    }
}

/// Resolves a [`DeviceChoice`] to a working device.
pub fn resolve(choice: DeviceChoice) -> Result<ResolvedDevice, DeviceError> {
    if choice == DeviceChoice::Cpu {
        return Ok(cpu(vec![]));
    }
    let adapters = wgpu_adapters();
    let pick = adapters.iter().find(|(_, a)| a.hardware).or_else(|| {
        if choice == DeviceChoice::Gpu {
            adapters.first()
        } else {
            None
        }
    });
    match pick {
        Some((device, info)) if works(device) => {
            let mut warnings = vec![];
            if !info.hardware {
                warnings.push(format!(
                    "`{}` is a software Vulkan driver: it runs on the CPU and is much slower than \
                     --device cpu",
                    info.name
                ));
            }
            Ok(ResolvedDevice {
                device: device.clone(),
                is_wgpu: true,
                description: format!("GPU: {} (wgpu)", info.name),
                warnings,
            })
        }
        Some((_, info)) => {
            if choice == DeviceChoice::Gpu {
                Err(DeviceError::NoAdapter)
            } else {
                Ok(cpu(vec![format!(
                    "GPU `{}` failed a test op; using the CPU",
                    info.name
                )]))
            }
        }
        None if choice == DeviceChoice::Gpu => Err(DeviceError::NoAdapter),
        None => Ok(cpu(vec![])),
    }
}
