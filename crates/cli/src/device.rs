//! Which backends this build has, and turning a device name (`flex`, `ndarray`, `wgpu`,
//! `wgpu:0`, `wgpu:cpu`) into a ready [`Device`]: what `cnn --device` does. `open_named` then
//! `make_default` is the usual pair (burn's default device follows, through `BURN_DEVICE`).

use std::fmt;

use burn::tensor::Device;

/// A burn backend the `cnn` binary can be built with (one cargo feature each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// burn's pure-Rust CPU backend (feature `flex`, the default).
    Flex,
    /// The older ndarray CPU backend (feature `ndarray`).
    Ndarray,
    /// GPU through wgpu: Vulkan, Metal, DX12 (feature `wgpu`).
    Wgpu,
}

/// Every backend, in the order the default is chosen.
pub const ALL: [Backend; 3] = [Backend::Flex, Backend::Ndarray, Backend::Wgpu];

impl Backend {
    /// The name used with `--device` and as the cargo feature.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::Wgpu => "wgpu",
        }
    }

    /// Whether this binary was built with the backend's feature.
    pub fn compiled_in(self) -> bool {
        match self {
            Backend::Flex => cfg!(feature = "flex"),
            Backend::Ndarray => cfg!(feature = "ndarray"),
            Backend::Wgpu => cfg!(feature = "wgpu"),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The backends compiled into this binary, in default order.
pub fn compiled() -> Vec<Backend> {
    ALL.into_iter().filter(|b| b.compiled_in()).collect()
}

/// Picks the backend for `requested` (or the default) among `available`.
///
/// The error is one line that names the feature to enable and what this build has.
pub fn resolve(requested: Option<&str>, available: &[Backend]) -> Result<Backend, String> {
    let have = if available.is_empty() {
        "none".to_string()
    } else {
        available.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
    };
    let Some(name) = requested else {
        return available
            .first()
            .copied()
            .ok_or_else(|| "this build has no backend; rebuild with --features flex (or ndarray, wgpu)".to_string());
    };
    let wanted = ALL
        .into_iter()
        .find(|b| b.name().eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            format!("unknown device '{name}': expected one of flex, ndarray, wgpu (this build has: {have})")
        })?;
    if available.contains(&wanted) {
        Ok(wanted)
    } else {
        Err(format!(
            "device '{wanted}' is not compiled into this build: rebuild with `--features {wanted}` (this build has: {have})"
        ))
    }
}

/// Opens the device of `backend`, checking first that it can actually run work.
pub fn open(backend: Backend) -> Result<Device, String> {
    match backend {
        #[cfg(feature = "flex")]
        Backend::Flex => Ok(Device::flex()),
        #[cfg(feature = "ndarray")]
        Backend::Ndarray => Ok(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        Backend::Wgpu => open_wgpu(burn::tensor::DeviceKind::DefaultDevice),
        #[allow(unreachable_patterns)]
        other => Err(format!(
            "device '{other}' is not compiled into this build: rebuild with `--features {other}`"
        )),
    }
}

/// Opens one device of a `--devices` list: a backend name (`flex`, `ndarray`, `wgpu`: its default
/// device), `wgpu:N` (the N-th discrete GPU, from 0) or `wgpu:cpu` (a software adapter).
pub fn open_spec(spec: &str, available: &[Backend]) -> Result<(Backend, Device), String> {
    let (name, index) = match spec.split_once(':') {
        Some((name, index)) => (name, Some(index)),
        None => (spec, None),
    };
    let backend = resolve(Some(name), available)?;
    match (backend, index) {
        (_, None) => Ok((backend, open(backend)?)),
        #[cfg(feature = "wgpu")]
        (Backend::Wgpu, Some(index)) => {
            use burn::tensor::DeviceKind;
            let kind = match index {
                "cpu" => DeviceKind::Cpu,
                n => DeviceKind::DiscreteGpu(
                    n.parse()
                        .map_err(|_| format!("bad device '{spec}': expected wgpu:N (N-th discrete GPU) or wgpu:cpu"))?,
                ),
            };
            Ok((backend, open_wgpu(kind)?))
        }
        (_, Some(_)) => Err(format!(
            "bad device '{spec}': only wgpu takes an index (wgpu:0, wgpu:1, wgpu:cpu); {name} is one device"
        )),
    }
}

/// The backend `requested` (or the build's default) opened: [`resolve`] then [`open`].
pub fn open_named(requested: Option<&str>) -> Result<(Backend, Device), String> {
    let backend = resolve(requested, &compiled())?;
    Ok((backend, open(backend)?))
}

/// The device of `device` (one), or every device of `list` (data-parallel training, the first
/// holding the model; specs as [`open_spec`] reads them), with a name for the first lines of a
/// run. Giving both is an error.
pub fn open_many(device: Option<&str>, list: &[String]) -> Result<(String, Vec<Device>), String> {
    if list.is_empty() {
        let (backend, device) = open_named(device)?;
        return Ok((backend.to_string(), vec![device]));
    }
    if device.is_some() {
        return Err("give either --device or --devices, not both".into());
    }
    let available = compiled();
    let devices = list
        .iter()
        .map(|spec| open_spec(spec, &available).map(|(_, d)| d))
        .collect::<Result<Vec<_>, String>>()?;
    Ok((format!("{} (data-parallel)", list.join(" + ")), devices))
}

/// Makes `backend` burn's default device for this process (`BURN_DEVICE`): burn creates some
/// tensors on its default device (e.g. a resumed run's optimiser state), which with wgpu
/// compiled in would otherwise be the GPU even for a CPU run. Call it before starting threads
/// (it sets an environment variable).
pub fn make_default(backend: Backend) {
    // SAFETY: documented as to be called before other threads start; nothing here reads the
    // environment concurrently.
    unsafe { std::env::set_var("BURN_DEVICE", backend.name()) };
}

/// wgpu panics deep inside its runtime (sometimes on another thread) when no adapter exists;
/// probe it once, quietly, and turn the first panic message into an error before any model code
/// runs.
#[cfg(feature = "wgpu")]
fn open_wgpu(kind: burn::tensor::DeviceKind) -> Result<Device, String> {
    use std::sync::{Arc, Mutex};

    use burn::tensor::Tensor;

    let first_panic: Arc<Mutex<Option<String>>> = Arc::default();
    let previous_hook = std::panic::take_hook();
    let record = Arc::clone(&first_panic);
    std::panic::set_hook(Box::new(move |info| record_first_panic(&record, info)));
    let kind_name = format!("{kind:?}");
    let probe = std::panic::catch_unwind(|| {
        let device = Device::wgpu(kind);
        let value = Tensor::<1>::ones([4], &device).sum().into_scalar::<f32>();
        (device, value)
    });
    std::panic::set_hook(previous_hook);
    match probe {
        Ok((device, value)) if value == 4.0 => Ok(device),
        Ok((_, value)) => Err(format!(
            "the wgpu adapter gave a wrong result in a self-test (4 ones summed to {value})"
        )),
        Err(_) => {
            let reason = recorded_panic(&first_panic);
            Err(format!(
                "no usable GPU adapter for wgpu ({kind_name}: {reason}); install a Vulkan or OpenGL driver (on Debian, `mesa-vulkan-drivers` gives a software Vulkan device) or use --device flex"
            ))
        }
    }
}

/// The message kept by [`record_first_panic`], or "unknown failure".
pub fn recorded_panic(slot: &std::sync::Mutex<Option<String>>) -> String {
    let kept = slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
    kept.unwrap_or_else(|| "unknown failure".into())
}

/// Stores the first line of the panic's message in `slot` unless a message is there already
/// (for a panic hook that turns a backend's panic into one error line).
pub fn record_first_panic(slot: &std::sync::Mutex<Option<String>>, info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("unknown failure");
    let mut first = slot.lock().unwrap_or_else(|p| p.into_inner());
    if first.is_none() {
        *first = Some(text.lines().next().unwrap_or(text).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_first_compiled_in() {
        assert_eq!(resolve(None, &[Backend::Ndarray, Backend::Wgpu]), Ok(Backend::Ndarray));
        assert!(resolve(None, &[]).is_err());
    }

    #[test]
    fn missing_backend_names_the_feature_and_what_exists() {
        let err = resolve(Some("wgpu"), &[Backend::Flex]).unwrap_err();
        assert!(err.contains("--features wgpu"), "{err}");
        assert!(err.contains("this build has: flex"), "{err}");
        assert!(!err.contains('\n'));
        let err = resolve(Some("cuda"), &[Backend::Flex]).unwrap_err();
        assert!(err.contains("unknown device 'cuda'"), "{err}");
    }

    #[test]
    fn compiled_list_matches_features() {
        assert_eq!(compiled().contains(&Backend::Flex), cfg!(feature = "flex"));
        assert_eq!(compiled().contains(&Backend::Wgpu), cfg!(feature = "wgpu"));
    }

    #[test]
    #[cfg(feature = "flex")]
    fn several_devices_are_opened_in_order_and_not_with_device_too() {
        let (name, devices) = open_many(None, &["flex".into(), "flex".into()]).unwrap();
        assert_eq!((name.as_str(), devices.len()), ("flex + flex (data-parallel)", 2));
        let err = open_many(Some("flex"), &["flex".into()]).unwrap_err();
        assert!(err.contains("not both"), "{err}");
        assert_eq!(open_many(Some("flex"), &[]).unwrap().1.len(), 1);
    }
}
