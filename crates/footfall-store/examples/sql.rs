//! Runs SQL against a copy of a footfall database and prints rows and timings (a
//! developer's tool for looking at plans: `EXPLAIN ANALYZE …`).
//! `cargo run --release -p footfall-store --example sql -- DB_FILE 'SQL' ['SQL' …]`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: sql DB_FILE SQL…")?;
    let conn = duckdb::Connection::open(path)?;
    for sql in args {
        let started = std::time::Instant::now();
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            let cols = row.as_ref().column_count();
            let vals: Vec<String> = (0..cols)
                .map(|i| match row.get_ref(i) {
                    Ok(v) => format!("{v:?}"),
                    Err(e) => format!("<{e}>"),
                })
                .collect();
            if n < 60 {
                println!("{}", vals.join(" | "));
            }
            n += 1;
        }
        println!(
            "-- {n} rows in {:.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    Ok(())
}
