//! Everything Coffer keeps in its state directory, as typed, validated data.
//!
//! The state directory has the same format on a development host and on the
//! appliance's state partition, so a directory made with `coffer init` and
//! `coffer user add` anywhere can seed an image.

mod arrivals;
mod config;
mod error;
mod paths;
mod quota;
mod retention;
mod users;

pub use arrivals::{ArrivalLock, ArrivalRecord, SetArrival};
pub use config::{AlertsConfig, CONFIG_VERSION, Config, EmailConfig, Secret, SmtpSecurity, WebhookConfig, WebhookKind, LogConfig, LoginThrottleConfig, NetworkConfig, RaidConfig, RetentionSchedule, TimeConfig, ServerConfig, parse_cidr};
pub use error::ConfigError;
pub use paths::StatePaths;
pub use quota::{QuotaRecord, QuotaWarning};
pub use retention::{PolicyText, RetentionFile};
pub use users::{AuthorizedKey, KeyProfile, Role, User, UserDb, UserName, StagedFile, validate_user_name, write_atomically};
