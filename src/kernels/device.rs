//! Facts about the device under a burn [`Device`]: the cubecl device (wgpu), the largest single
//! allocation it accepts, and its allocator's report. Used by the engine (to size plans) and by
//! the benchmarks.

use burn::tensor::Device;

/// The cubecl device under `device` (through an autodiff wrapper), if any.
pub fn cube_device(device: &Device) -> Option<burn::cubecl::Device> {
    fn cube(device: &burn::backend::DispatchDevice) -> Option<burn::cubecl::Device> {
        match device {
            burn::backend::DispatchDevice::Cube(d) => Some(d.clone()),
            burn::backend::DispatchDevice::Autodiff(inner) => cube(inner),
            _ => None,
        }
    }
    cube(device.as_dispatch())
}

/// The largest single allocation the device accepts (cubecl's `max_page_size`, from the
/// adapter's buffer limits: 128 MiB on lavapipe), `None` for non-cubecl devices.
pub fn max_allocation_bytes(device: &Device) -> Option<u64> {
    Some(
        cube_device(device)?
            .client()
            .properties()
            .memory
            .max_page_size,
    )
}

/// The cubecl allocator's report for `device` (every stream), `None` for non-cubecl devices.
pub fn memory_report(device: &Device) -> Option<burn::cubecl::MemoryReport> {
    Some(
        cube_device(device)?
            .client()
            .memory_report(burn::cubecl::MemoryScope::Device),
    )
}

/// Whether `device` records gradients (an autodiff wrapper around a backend).
pub fn is_autodiff(device: &Device) -> bool {
    matches!(
        device.as_dispatch(),
        burn::backend::DispatchDevice::Autodiff(_)
    )
}
