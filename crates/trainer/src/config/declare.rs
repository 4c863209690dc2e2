//! How the settings table (`settings.rs`) becomes types: [`SettingInfo`], the [`Merge`] rules of
//! flags over base values, and the `settings!` macro that generates the group structs,
//! `TrainConfig`, `TrainOverrides`, their merge, the builders, the checks and `SETTINGS`.

use cnn_data_augment::Pipeline;

/// What the table says of one setting, for code that lists them (`cnn train --help` groups,
/// error messages that turn a setting's name into its flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingInfo {
    /// The field's name in `config.json`, presets and [`TrainError::InvalidSetting`].
    ///
    /// [`TrainError::InvalidSetting`]: crate::TrainError::InvalidSetting
    pub name: &'static str,
    /// The group it is listed under.
    pub group: &'static str,
    /// Whether `--resume` may change it.
    pub changeable_on_resume: bool,
}

impl SettingInfo {
    /// The command-line flag: `--` and the name with dashes.
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }
}

/// How a flag's value applies to a setting's base value.
pub trait Merge<Base> {
    /// `base` with this flag's value applied; `Err(reason)` when it cannot be read.
    fn merge(&self, base: Base) -> Result<Base, String>;
}

/// A value replaces the base's when given.
impl<T: Clone> Merge<T> for Option<T> {
    fn merge(&self, base: T) -> Result<T, String> {
        Ok(self.clone().unwrap_or(base))
    }
}

/// An optional setting (`None` is a value of its own) is replaced when the flag is given.
impl<T: Clone> Merge<Option<T>> for Option<T> {
    fn merge(&self, base: Option<T>) -> Result<Option<T>, String> {
        Ok(self.clone().or(base))
    }
}

/// A switch can only be switched on.
impl Merge<bool> for bool {
    fn merge(&self, base: bool) -> Result<bool, String> {
        Ok(*self || base)
    }
}

/// An augmentation preset name or pipeline file.
impl Merge<Pipeline> for Option<String> {
    fn merge(&self, base: Pipeline) -> Result<Pipeline, String> {
        match self {
            Some(text) => Pipeline::from_arg(text).map_err(|e| format!("{text} is not a preset or pipeline file: {e}")),
            None => Ok(base),
        }
    }
}

/// Declares the settings, group by group. Each group:
///
/// ```text
/// /// documentation of the group's struct
/// field: StructName, "Help heading" { entries }
/// ```
///
/// and each entry:
///
/// ```text
/// /// help text (also the field's documentation)
/// name: Type = default, flag(FlagType), fixed|changeable [, clap(extra args)] [, check |v| reason];
/// ```
///
/// A group is a struct of its own, a field of [`TrainConfig`] flattened into `config.json`
/// (whose keys stay the settings' names); `cnn train --help` lists each group under its heading.
/// The flag's type says how it applies ([`Merge`]): `Option<Type>` replaces the base's value
/// when given; for a `Type` that is an `Option` already, the flag is that same `Option`; a
/// `bool` flag can only switch a `bool` setting on; `Option<String>` is parsed into a `Type`
/// that is not a string (the augmentation pipeline). (The flag's type is written out because
/// clap reads `Option` and `bool` from the field's tokens.) `changeable` marks the settings a
/// resumed run may change (`fixed`: the run's own value only). A check yields `Some(reason)`
/// when the value is bad.
macro_rules! settings {
    (@changeable changeable, $cfg:ident, $over:expr, $base:expr, $group:ident . $name:ident) => {
        $cfg.$group.$name = settings!(@merge $over, $base, $name)
    };
    (@changeable fixed, $cfg:ident, $over:expr, $base:expr, $group:ident . $name:ident) => {};

    (@merge $over:expr, $base:expr, $name:ident) => {
        crate::config::declare::Merge::merge(&$over, $base).map_err(|reason| crate::error::TrainError::InvalidSetting {
            setting: stringify!($name),
            reason,
        })?
    };

    (@is_resume changeable) => { true };
    (@is_resume fixed) => { false };

    (@check $value:expr, $name:ident) => {};
    (@check $value:expr, $name:ident, |$v:ident| $check:expr) => {{
        let $v = &$value;
        if let Some(reason) = $check {
            return Err(crate::error::TrainError::InvalidSetting { setting: stringify!($name), reason });
        }
    }};

    ($(
        $(#[doc = $group_doc:literal])*
        $group:ident : $group_ty:ident, $heading:literal {
            $(
                $(#[doc = $doc:literal])*
                $name:ident : $ty:ty = $default:expr, flag($($flag:tt)+), $resume:ident
                $(, clap($($clap:tt)*))? $(, check |$v:ident| $check:expr)?;
            )*
        }
    )*) => {
        $(
            $(#[doc = $group_doc])*
            #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
            #[serde(default)]
            pub struct $group_ty {
                $( $(#[doc = $doc])* pub $name: $ty, )*
            }

            impl Default for $group_ty {
                fn default() -> Self {
                    Self { $( $name: $default, )* }
                }
            }
        )*

        /// Settings of one training run, by concern. Serialised as `config.json` in the run
        /// folder, one key per setting (the groups flattened); a setting missing from an older
        /// file takes its default.
        #[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        pub struct TrainConfig {
            $( $(#[doc = $group_doc])* #[serde(flatten)] pub $group: $group_ty, )*
        }

        /// Every training setting as "leave it as the base has it" (`None`/`false`) or a new
        /// value, on top of a preset: what `cnn train`'s flags, a preset file and library
        /// callers give. With the `clap` feature it is also the set of `cnn train`'s flags.
        #[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "clap", derive(clap::Args))]
        #[serde(default, deny_unknown_fields)]
        pub struct TrainOverrides {
            /// Start from a named recipe (`--preset list` lists them) or a preset file
            /// (.toml); other flags override its settings.
            #[cfg_attr(feature = "clap", arg(long))]
            pub preset: Option<String>,
            $( $(
                $(#[doc = $doc])*
                #[cfg_attr(feature = "clap", arg(long, help_heading = $heading $(, $($clap)*)?))]
                pub $name: $($flag)+,
            )* )*
        }

        impl TrainOverrides {
            /// `base` with every setting given here replacing the base's (the preset aside).
            pub(crate) fn apply_to(&self, base: TrainConfig) -> crate::error::Result<TrainConfig> {
                Ok(TrainConfig {
                    $( $group: $group_ty {
                        $( $name: settings!(@merge self.$name, base.$group.$name, $name), )*
                    }, )*
                })
            }

            /// `run` with only the settings a resumed run may change taken from here.
            pub(crate) fn apply_changeable(&self, run: TrainConfig) -> crate::error::Result<TrainConfig> {
                let mut cfg = run.clone();
                $( $( settings!(@changeable $resume, cfg, self.$name, run.$group.$name.clone(), $group . $name); )* )*
                Ok(cfg)
            }
        }

        impl TrainConfig {
            $( $(
                pastey::paste! {
                    #[doc = concat!("This config with `", stringify!($name), "` set to `value` (see [`",
                        stringify!($group_ty), "::", stringify!($name), "`]).")]
                    #[must_use]
                    pub fn [<with_ $name>](mut self, value: $ty) -> Self {
                        self.$group.$name = value;
                        self
                    }
                }
            )* )*

            /// Each setting's own check, in the table's order: the first bad value.
            pub(crate) fn check_each(&self) -> crate::error::Result<()> {
                $( $( settings!(@check self.$group.$name, $name $(, |$v| $check)?); )* )*
                Ok(())
            }
        }

        /// Every setting, in the order of `config.json`.
        pub const SETTINGS: &[SettingInfo] = &[
            $( $( SettingInfo {
                name: stringify!($name),
                group: $heading,
                changeable_on_resume: settings!(@is_resume $resume),
            }, )* )*
        ];
    };

}
