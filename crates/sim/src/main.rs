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
        ..Default::default()
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("snc-sim: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::from(2);
        }
    };
    let sim = match snc_sim::start(config, listener).await {
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
