//! The stable ABI of native runtime-driver plugins. A plugin is a dynamic library (`cdylib`) in
//! the EN's plugin directory that exports an abi_stable root module, [`DriverPlugin`]. The EN
//! checks, before calling anything: the abi_stable header, the layout of the root module, the
//! version of this crate the plugin was built with (semver-compatible), and [`DRIVER_ABI`]. A
//! mismatch or a missing symbol is refused with the reason.
//!
//! Every call crosses as JSON text (the driver contract's own types), so the ABI stays a
//! handful of function pointers. A plugin is written as a [`BlockingDriver`] and exported with
//! [`export_driver!`]; the generated functions catch every panic inside the plugin and return
//! it as an error, so no unwinding ever crosses into the EN.

use abi_stable::std_types::{RResult, RStr, RString};
use eos_domain::state::ComponentSpec;
use eos_driver::{DriverError, DriverInfo, Handle, Health, InstanceKey, Stats};
use serde::{Deserialize, Serialize};

pub use abi_stable;

/// The driver ABI this EN speaks; a plugin built for another is refused.
pub const DRIVER_ABI: u32 = 1;

pub use root::{DriverPlugin, DriverPluginRef};

/// The root module, apart: abi_stable's generated accessors for the optional fields after
/// `prune` read through raw pointers, the one place this crate allows `unsafe` code (none
/// of it written by hand).
#[allow(unsafe_code)]
mod root {
    use abi_stable::library::RootModule;
    use abi_stable::sabi_types::VersionStrings;
    use abi_stable::std_types::{RResult, RStr, RString};
    use abi_stable::{StableAbi, declare_root_module_statics, package_version_strings};

    /// The root module of a driver plugin. Fields are only ever added at the end.
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = DriverPluginRef)))]
    #[sabi(missing_field(panic))]
    pub struct DriverPlugin {
        /// [`DRIVER_ABI`](crate::DRIVER_ABI) as the plugin was built.
        pub abi: u32,
        /// `DriverInfo` as JSON.
        pub info: extern "C" fn() -> RString,
        /// Prepares the driver with a folder of its own (a path); must be called first.
        pub init: extern "C" fn(RStr<'_>) -> RResult<(), RString>,
        /// `(InstanceKey, ComponentSpec)` → `Handle`, errors as [`WireError`](crate::WireError).
        pub apply: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<RString, RString>,
        /// `InstanceKey` → `Health`.
        pub inspect: extern "C" fn(RStr<'_>) -> RString,
        /// `InstanceKey` → ().
        pub remove: extern "C" fn(RStr<'_>) -> RResult<(), RString>,
        /// `(InstanceKey, ComponentSpec, Handle)` → `Handle`.
        pub recover: extern "C" fn(RStr<'_>, RStr<'_>, RStr<'_>) -> RResult<RString, RString>,
        /// `[InstanceKey]` to keep → the removed `[InstanceKey]`.
        #[sabi(last_prefix_field)]
        pub prune: extern "C" fn(RStr<'_>) -> RResult<RString, RString>,
        /// `InstanceKey` → `Stats`. Added in 0.1 after the first plugins: one built before has
        /// none, and the EN reports its stats as unknown.
        #[sabi(missing_field(option))]
        pub stats: extern "C" fn(RStr<'_>) -> RResult<RString, RString>,
        /// `(InstanceKey, lines)` → the last lines, oldest first (`[String]`). Optional like `stats`.
        #[sabi(missing_field(option))]
        pub logs: extern "C" fn(RStr<'_>, u32) -> RResult<RString, RString>,
    }

    impl RootModule for DriverPluginRef {
        declare_root_module_statics! {DriverPluginRef}
        const BASE_NAME: &'static str = "eos_driver_plugin";
        const NAME: &'static str = "eos driver plugin";
        const VERSION_STRINGS: VersionStrings = package_version_strings!();
    }
}

/// A [`DriverError`] as it crosses the boundary.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireError {
    Fetch { repository: String, reason: String },
    Start { reason: String },
    Other { reason: String },
}

impl From<DriverError> for WireError {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::Fetch { repository, reason } => WireError::Fetch { repository, reason },
            DriverError::Start(reason) => WireError::Start { reason },
            DriverError::Other(reason) => WireError::Other { reason },
        }
    }
}

impl From<WireError> for DriverError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Fetch { repository, reason } => DriverError::Fetch { repository, reason },
            WireError::Start { reason } => DriverError::Start(reason),
            WireError::Other { reason } => DriverError::Other(reason),
        }
    }
}

/// What a plugin implements: the driver contract (`plugins/driver/CONTRACT.md`), with blocking
/// calls (the EN makes them on threads of their own).
pub trait BlockingDriver: Send + Sync + 'static {
    fn info(&self) -> DriverInfo;
    fn apply(&self, key: &InstanceKey, spec: &ComponentSpec) -> Result<Handle, DriverError>;
    fn inspect(&self, key: &InstanceKey) -> Health;
    fn remove(&self, key: &InstanceKey) -> Result<(), DriverError>;
    fn recover(
        &self,
        key: &InstanceKey,
        spec: &ComponentSpec,
        _handle: &Handle,
    ) -> Result<Handle, DriverError> {
        self.apply(key, spec)
    }
    fn prune(&self, _keep: &[InstanceKey]) -> Result<Vec<InstanceKey>, DriverError> {
        Ok(Vec::new())
    }
    fn stats(&self, _key: &InstanceKey) -> Result<Stats, DriverError> {
        Ok(Stats::default())
    }
    fn logs(&self, _key: &InstanceKey, _lines: usize) -> Result<Vec<String>, DriverError> {
        Ok(Vec::new())
    }
}

/// Support for [`export_driver!`]; not for direct use.
#[doc(hidden)]
pub mod kit {
    use super::*;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    }

    fn wire(e: DriverError) -> RString {
        RString::from(serde_json::to_string(&WireError::from(e)).expect("errors serialize"))
    }

    fn parse<T: serde::de::DeserializeOwned>(what: &str, json: RStr<'_>) -> Result<T, DriverError> {
        serde_json::from_str(json.as_str())
            .map_err(|e| DriverError::Other(format!("the EN sent an unreadable {what}: {e}")))
    }

    thread_local! {
        /// Where the last panic on this thread happened, as the quiet hook saw it.
        static PANIC_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    }

    /// Replaces the plugin's panic hook (the plugin has a standard library of its own) with one
    /// that prints nothing and keeps the panic's place for [`guard`]: a panic becomes the
    /// call's error, not a backtrace in the EN's output.
    fn quiet_panics() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                PANIC_AT.with(|p| *p.borrow_mut() = at);
            }))
        });
    }

    /// Runs `f`, turning a panic into an error that names the plugin's call and where the panic
    /// happened.
    pub fn guard<T>(
        call: &str,
        f: impl FnOnce() -> Result<T, DriverError>,
    ) -> Result<T, DriverError> {
        quiet_panics();
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => r,
            Err(p) => {
                let at = PANIC_AT
                    .with(|p| p.borrow_mut().take())
                    .map(|at| format!(" (at {at})"))
                    .unwrap_or_default();
                Err(DriverError::Other(format!(
                    "the plugin panicked in {call}: {}{at}",
                    panic_text(p)
                )))
            }
        }
    }

    pub fn info(d: &dyn BlockingDriver) -> RString {
        let info = catch_unwind(AssertUnwindSafe(|| d.info())).unwrap_or_else(|_| DriverInfo {
            runtime: String::new(),
            source: "native".into(),
            version: "the plugin panicked in info".into(),
            deployment_types: Vec::new(),
        });
        RString::from(serde_json::to_string(&info).expect("info serializes"))
    }

    pub fn apply(
        d: &dyn BlockingDriver,
        key: RStr<'_>,
        spec: RStr<'_>,
    ) -> RResult<RString, RString> {
        let out = guard("apply", || {
            let key: InstanceKey = parse("key", key)?;
            let spec: ComponentSpec = parse("spec", spec)?;
            d.apply(&key, &spec)
        });
        handle_out(out)
    }

    pub fn recover(
        d: &dyn BlockingDriver,
        key: RStr<'_>,
        spec: RStr<'_>,
        handle: RStr<'_>,
    ) -> RResult<RString, RString> {
        let out = guard("recover", || {
            let key: InstanceKey = parse("key", key)?;
            let spec: ComponentSpec = parse("spec", spec)?;
            let handle: Handle = parse("handle", handle)?;
            d.recover(&key, &spec, &handle)
        });
        handle_out(out)
    }

    fn handle_out(out: Result<Handle, DriverError>) -> RResult<RString, RString> {
        match out {
            Ok(h) => RResult::ROk(RString::from(
                serde_json::to_string(&h).expect("handles serialize"),
            )),
            Err(e) => RResult::RErr(wire(e)),
        }
    }

    pub fn inspect(d: &dyn BlockingDriver, key: RStr<'_>) -> RString {
        let health = match guard("inspect", || {
            let key: InstanceKey = parse("key", key)?;
            Ok(d.inspect(&key))
        }) {
            Ok(h) => h,
            Err(e) => Health::Failed {
                reason: e.to_string(),
            },
        };
        RString::from(serde_json::to_string(&health).expect("health serializes"))
    }

    pub fn remove(d: &dyn BlockingDriver, key: RStr<'_>) -> RResult<(), RString> {
        match guard("remove", || {
            let key: InstanceKey = parse("key", key)?;
            d.remove(&key)
        }) {
            Ok(()) => RResult::ROk(()),
            Err(e) => RResult::RErr(wire(e)),
        }
    }

    /// `value` as JSON, or the error on the wire.
    fn json_out<T: Serialize>(out: Result<T, DriverError>) -> RResult<RString, RString> {
        match out {
            Ok(v) => RResult::ROk(RString::from(
                serde_json::to_string(&v).expect("contract types serialize"),
            )),
            Err(e) => RResult::RErr(wire(e)),
        }
    }

    pub fn stats(d: &dyn BlockingDriver, key: RStr<'_>) -> RResult<RString, RString> {
        json_out(guard("stats", || {
            let key: InstanceKey = parse("key", key)?;
            d.stats(&key)
        }))
    }

    pub fn logs(d: &dyn BlockingDriver, key: RStr<'_>, lines: u32) -> RResult<RString, RString> {
        json_out(guard("logs", || {
            let key: InstanceKey = parse("key", key)?;
            d.logs(&key, lines as usize)
        }))
    }

    pub fn prune(d: &dyn BlockingDriver, keep: RStr<'_>) -> RResult<RString, RString> {
        match guard("prune", || {
            let keep: Vec<InstanceKey> = parse("keep list", keep)?;
            d.prune(&keep)
        }) {
            Ok(removed) => RResult::ROk(RString::from(
                serde_json::to_string(&removed).expect("keys serialize"),
            )),
            Err(e) => RResult::RErr(wire(e)),
        }
    }
}

/// Exports a [`BlockingDriver`] as this library's root module. `$make` is called once, by the
/// EN's `init`, with the driver's own folder (a `&std::path::Path`); `$abi` is normally
/// [`DRIVER_ABI`].
#[macro_export]
macro_rules! export_driver {
    ($make:expr) => {
        $crate::export_driver!($make, $crate::DRIVER_ABI);
    };
    ($make:expr, $abi:expr) => {
        static DRIVER: ::std::sync::OnceLock<Box<dyn $crate::BlockingDriver>> =
            ::std::sync::OnceLock::new();

        fn driver() -> &'static dyn $crate::BlockingDriver {
            DRIVER
                .get()
                .map(|d| &**d)
                .expect("the EN calls init before anything else")
        }

        extern "C" fn eos_info() -> $crate::abi_stable::std_types::RString {
            match DRIVER.get() {
                Some(d) => $crate::kit::info(&**d),
                None => $crate::abi_stable::std_types::RString::from("{}"),
            }
        }

        extern "C" fn eos_init(
            dir: $crate::abi_stable::std_types::RStr<'_>,
        ) -> $crate::abi_stable::std_types::RResult<(), $crate::abi_stable::std_types::RString> {
            let made = $crate::kit::guard("init", || {
                let make = $make;
                let made: Box<dyn $crate::BlockingDriver> =
                    Box::new(make(::std::path::Path::new(dir.as_str()))?);
                Ok(made)
            });
            match made {
                Ok(d) => {
                    let _ = DRIVER.set(d);
                    $crate::abi_stable::std_types::RResult::ROk(())
                }
                Err(e) => $crate::abi_stable::std_types::RResult::RErr(
                    $crate::abi_stable::std_types::RString::from(e.to_string()),
                ),
            }
        }

        extern "C" fn eos_apply(
            key: $crate::abi_stable::std_types::RStr<'_>,
            spec: $crate::abi_stable::std_types::RStr<'_>,
        ) -> $crate::abi_stable::std_types::RResult<
            $crate::abi_stable::std_types::RString,
            $crate::abi_stable::std_types::RString,
        > {
            $crate::kit::apply(driver(), key, spec)
        }

        extern "C" fn eos_inspect(
            key: $crate::abi_stable::std_types::RStr<'_>,
        ) -> $crate::abi_stable::std_types::RString {
            $crate::kit::inspect(driver(), key)
        }

        extern "C" fn eos_remove(
            key: $crate::abi_stable::std_types::RStr<'_>,
        ) -> $crate::abi_stable::std_types::RResult<(), $crate::abi_stable::std_types::RString> {
            $crate::kit::remove(driver(), key)
        }

        extern "C" fn eos_recover(
            key: $crate::abi_stable::std_types::RStr<'_>,
            spec: $crate::abi_stable::std_types::RStr<'_>,
            handle: $crate::abi_stable::std_types::RStr<'_>,
        ) -> $crate::abi_stable::std_types::RResult<
            $crate::abi_stable::std_types::RString,
            $crate::abi_stable::std_types::RString,
        > {
            $crate::kit::recover(driver(), key, spec, handle)
        }

        extern "C" fn eos_prune(
            keep: $crate::abi_stable::std_types::RStr<'_>,
        ) -> $crate::abi_stable::std_types::RResult<
            $crate::abi_stable::std_types::RString,
            $crate::abi_stable::std_types::RString,
        > {
            $crate::kit::prune(driver(), keep)
        }

        extern "C" fn eos_stats(
            key: $crate::abi_stable::std_types::RStr<'_>,
        ) -> $crate::abi_stable::std_types::RResult<
            $crate::abi_stable::std_types::RString,
            $crate::abi_stable::std_types::RString,
        > {
            $crate::kit::stats(driver(), key)
        }

        extern "C" fn eos_logs(
            key: $crate::abi_stable::std_types::RStr<'_>,
            lines: u32,
        ) -> $crate::abi_stable::std_types::RResult<
            $crate::abi_stable::std_types::RString,
            $crate::abi_stable::std_types::RString,
        > {
            $crate::kit::logs(driver(), key, lines)
        }

        #[$crate::abi_stable::export_root_module]
        pub fn eos_driver_plugin_root() -> $crate::DriverPluginRef {
            use $crate::abi_stable::prefix_type::PrefixTypeTrait;
            $crate::DriverPlugin {
                abi: $abi,
                info: eos_info,
                init: eos_init,
                apply: eos_apply,
                inspect: eos_inspect,
                remove: eos_remove,
                recover: eos_recover,
                prune: eos_prune,
                stats: eos_stats,
                logs: eos_logs,
            }
            .leak_into_prefix()
        }
    };
}
