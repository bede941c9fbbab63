// SPDX-License-Identifier: GPL-2.0

//! A minimal KTAP producer: each test is a function returning `Result`.

/// A test's outcome: `Err` carries the reason it failed, or starts with
/// `SKIP:` when the test cannot run here.
pub type TestResult = Result<(), String>;

/// A named test.
#[derive(Clone, Copy)]
pub struct Test {
    pub name: &'static str,
    pub run: fn() -> TestResult,
}

/// Fails the test unless `got == want`.
#[macro_export]
macro_rules! check_eq {
    ($got:expr, $want:expr) => {{
        let (got, want) = (&$got, &$want);
        if got != want {
            return Err(format!(
                "{}:{}: {} = {:?}, expected {:?}",
                file!(),
                line!(),
                stringify!($got),
                got,
                want
            ));
        }
    }};
}

/// Fails the test unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr) => {{
        if !$cond {
            return Err(format!(
                "{}:{}: {} is false",
                file!(),
                line!(),
                stringify!($cond)
            ));
        }
    }};
}

/// Runs every test, prints KTAP, and returns the number that failed.
pub fn run(suite: &str, tests: &[Test]) -> usize {
    println!("KTAP version 1");
    println!("# Suite: {suite}");
    println!("1..{}", tests.len());
    let mut failed = 0;
    for (i, t) in tests.iter().enumerate() {
        match (t.run)() {
            Ok(()) => println!("ok {} {}", i + 1, t.name),
            Err(why) if why.starts_with("SKIP:") => {
                println!("ok {} {} # SKIP{}", i + 1, t.name, &why[5..]);
            }
            Err(why) => {
                failed += 1;
                println!("# {}: {}", t.name, why);
                println!("not ok {} {}", i + 1, t.name);
            }
        }
    }
    println!(
        "# {suite}: {} passed, {} failed",
        tests.len() - failed,
        failed
    );
    failed
}
