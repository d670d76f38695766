//! Compiled pipelines kept on disk between runs, so that a second `train` of the same network on the same
//! adapter compiles nothing: the driver's own pipeline cache (`wgpu::PipelineCache`, on Vulkan), loaded when
//! the device opens and saved after each compile of the fused engine.
//!
//! The file lives under the user's cache folder (`$XDG_CACHE_HOME/wgmlp`, else `~/.cache/wgmlp`), one a
//! driver: its name carries wgpu's key for the device and a hash of the driver's version. Deleting it costs
//! one compile. A file that is truncated or corrupt is ignored: it starts with a checksum of the rest, since
//! wgpu checks only its header and the driver would get the body as it is.

use std::path::{Path, PathBuf};

/// The driver's pipeline cache and the file it is saved to.
pub(crate) struct DiskCache {
    cache: wgpu::PipelineCache,
    file: PathBuf,
}

impl DiskCache {
    /// The cache for `device`, filled from its file where one is there and whole; None where the backend has
    /// no cache data or the user has no cache folder.
    pub(crate) fn open(device: &wgpu::Device, info: &wgpu::AdapterInfo) -> Option<Self> {
        let key = wgpu::util::pipeline_cache_key(info)?;
        let driver = fnv1a(format!("{}{}{}", info.name, info.driver, info.driver_info).as_bytes());
        let file = folder()?.join(format!("{key}_{driver:016x}.bin"));
        let saved = std::fs::read(&file).ok();
        let data = saved.as_deref().and_then(checked);
        // SAFETY: `data` is what `PipelineCache::get_data` gave an earlier run for this adapter and driver
        // (the file's name says which), unchanged (its checksum says so); wgpu checks its header too, and
        // with `fallback` an outdated one leaves the cache empty.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("wgmlp pipelines"),
                data,
                fallback: true,
            })
        };
        Some(DiskCache { cache, file })
    }

    pub(crate) fn pipeline_cache(&self) -> &wgpu::PipelineCache {
        &self.cache
    }

    /// Writes the cache to its file, whole or not at all (a temporary file renamed over it). A cache that
    /// cannot be written costs the next run a compile, nothing more, so failures pass in silence.
    pub(crate) fn save(&self) {
        let Some(data) = self.cache.get_data() else {
            return;
        };
        let mut contents = fnv1a(&data).to_le_bytes().to_vec();
        contents.extend_from_slice(&data);
        let _ = write_whole(&self.file, &contents);
    }
}

/// The folder the caches live in, made where it is missing.
fn folder() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|path| Path::new(path).is_absolute())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
    let folder = base.join("wgmlp");
    std::fs::create_dir_all(&folder).ok()?;
    Some(folder)
}

/// The data of a saved file, where its checksum matches.
fn checked(saved: &[u8]) -> Option<&[u8]> {
    let (sum, data) = saved.split_first_chunk::<8>()?;
    (u64::from_le_bytes(*sum) == fnv1a(data)).then_some(data)
}

fn write_whole(file: &Path, contents: &[u8]) -> std::io::Result<()> {
    let temporary = file.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&temporary, contents)?;
    std::fs::rename(&temporary, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// 64-bit FNV-1a: a checksum against truncation and stray bytes, not against an adversary.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_file_is_read_back_only_whole() {
        let data = b"pipelines".to_vec();
        let mut saved = fnv1a(&data).to_le_bytes().to_vec();
        saved.extend_from_slice(&data);
        assert_eq!(checked(&saved), Some(&data[..]));
        assert_eq!(checked(&saved[..saved.len() - 1]), None, "truncated");
        let mut flipped = saved.clone();
        flipped[10] ^= 1;
        assert_eq!(checked(&flipped), None, "a stray bit");
        assert_eq!(checked(&saved[..5]), None, "shorter than the checksum");
    }
}
