//! `cargo xtask it ui`: the web UI in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed with apt when missing), driven over WebDriver by
//! `tests/ui.rs`. The screenshots are saved in the target directory's `ui-screenshots/`.

/// Debian's packages of the browser and its driver.
const PACKAGES: &str = "chromium chromium-driver";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Runs the suite.
pub(crate) fn run() -> anyhow::Result<()> {
    with_browser(&[
        "test",
        "--locked",
        "-p",
        "pikoci",
        "--features",
        "it",
        "--test",
        "e2e_ui",
    ])
}

/// `cargo xtask bench ui`: `benches/ui.rs` with the same browser.
pub(crate) fn bench() -> anyhow::Result<()> {
    with_browser(&["bench", "--locked", "-p", "pikoci", "--bench", "ui"])
}

/// Runs `cargo args` with Chromium and its driver installed and named in the environment.
fn with_browser(args: &[&str]) -> anyhow::Result<()> {
    super::apt_ensure("the ui suite", PACKAGES, || {
        std::path::Path::new(CHROMIUM).is_file() && std::path::Path::new(CHROMEDRIVER).is_file()
    })?;
    let screenshots = super::target_dir()?.join("ui-screenshots");
    let screenshots = screenshots
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("the target directory's path is not UTF-8"))?;
    eprintln!("screenshots: {screenshots}");
    crate::cargo_with_env(
        args,
        &[
            ("PIKOCI_CHROMIUM", CHROMIUM),
            ("PIKOCI_CHROMEDRIVER", CHROMEDRIVER),
            ("PIKOCI_SCREENSHOTS", screenshots),
        ],
    )
}
