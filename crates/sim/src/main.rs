use clap::Parser;

/// Serves a simulated ServiceNow instance. The first line on stdout is a JSON
/// object with `instance_url`, `username`, `password`, `client_id` and
/// `client_secret`.
#[derive(Parser, Debug)]
#[command(name = "snc-sim", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Seed of the generated data and tokens.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Release family reported in glide.war (e.g. tokyo, xanadu, washingtondc).
    #[arg(long, default_value = "xanadu")]
    release: String,
    /// Days of history to generate before now.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Events generated per day.
    #[arg(long, default_value_t = 200)]
    events_per_day: u32,
    /// OAuth access token lifespan in seconds.
    #[arg(long, default_value_t = 1800)]
    access_lifespan: i64,
    /// OAuth refresh token lifespan in seconds.
    #[arg(long, default_value_t = 8_640_000)]
    refresh_lifespan: i64,
    /// The service account lacks the admin role.
    #[arg(long)]
    not_admin: bool,
    /// The REST API is off: Table API calls answer 403.
    #[arg(long)]
    rest_api_off: bool,
    /// Hibernating: every path answers 200 with an HTML page.
    #[arg(long)]
    hibernating: bool,
    /// No Batch API (as on old releases): /api/now/v1/batch answers 400.
    #[arg(long)]
    batch_api_off: bool,
    /// Write every API call to syslog_transaction, as a real instance does
    /// (the connector's own calls included).
    #[arg(long)]
    log_api_calls: bool,
    /// Share (0..1) of Table API calls answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_fraction: f64,
    /// An hourly rate-limit rule: Table API calls per hour, then 429 until the hour ends.
    #[arg(long)]
    rate_limit_per_hour: Option<u32>,
    /// Share (0..1) of Table API calls answered 500 or 503.
    #[arg(long, default_value_t = 0.0)]
    error_fraction: f64,
    /// Delay added to every Table API answer, milliseconds.
    #[arg(long, default_value_t = 0)]
    slow_ms: u64,
    /// Pages with sysparm_limit above this get "Transaction cancelled".
    #[arg(long)]
    cancel_above_limit: Option<u32>,
    /// How long a cancelled transaction takes to answer, ms (a real instance: 60000).
    #[arg(long, default_value_t = 0)]
    cancel_delay_ms: u64,
    /// The hardening settings: default (absent records, platform defaults),
    /// hardened (as ServiceNow recommends) or weak (a neglected instance).
    #[arg(long, default_value = "default", value_parser = ["default", "hardened", "weak"])]
    posture: String,
    /// People in sys_user besides the service accounts (every 17th inactive,
    /// every 23rd locked out).
    #[arg(long, default_value_t = 300)]
    people: u32,
    /// Share (0..1) of event records hidden by ACLs (short pages).
    #[arg(long, default_value_t = 0.0)]
    acl_hidden_fraction: f64,
    /// Accounts like the connector's, `<username>-1` … `<username>-<n>`,
    /// same password and rights: many connections to this one instance.
    #[arg(long, default_value_t = 0)]
    fleet_accounts: u32,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config = snc_sim::SimConfig {
        seed: args.seed,
        days: args.days,
        events_per_day: args.events_per_day,
        release: args.release.to_ascii_lowercase(),
        access_lifespan: args.access_lifespan,
        refresh_lifespan: args.refresh_lifespan,
        posture: snc_sim::posture::Profile::parse(&args.posture).unwrap_or_default(),
        people: args.people,
        fleet_accounts: args.fleet_accounts,
        ..Default::default()
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("snc-sim: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::from(2);
        }
    };
    let conditions = snc_sim::Conditions {
        not_admin: args.not_admin,
        rest_api_off: args.rest_api_off,
        hibernating: args.hibernating,
        batch_api_off: args.batch_api_off,
        log_api_calls: args.log_api_calls,
        rate_limit_fraction: args.rate_limit_fraction,
        rate_limit_per_hour: args.rate_limit_per_hour,
        error_fraction: args.error_fraction,
        slow_ms: args.slow_ms,
        cancel_above_limit: args.cancel_above_limit,
        cancel_delay_ms: args.cancel_delay_ms,
        acl_hidden_fraction: args.acl_hidden_fraction,
        ..Default::default()
    };
    let sim = match snc_sim::start_with(config, conditions, listener).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("snc-sim: cannot start: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    println!("{}", sim.banner());
    let _ = tokio::signal::ctrl_c().await;
    sim.stop().await;
    std::process::ExitCode::SUCCESS
}
