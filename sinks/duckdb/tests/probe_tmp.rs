#[test]
fn probe() {
    let c = duckdb::Connection::open_in_memory().unwrap();
    for q in ["SELECT '{\"a\":1}'::JSON", "SELECT library_version FROM pragma_version()", "SELECT extension_name, loaded, installed FROM duckdb_extensions() WHERE loaded",
              "CREATE TABLE t(k VARCHAR, v INT)", "CREATE TABLE s(k VARCHAR, v INT)", "INSERT INTO s VALUES ('a',1),('b',2)", "INSERT INTO t VALUES ('a',0)",
              "MERGE INTO t USING s ON t.k = s.k WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.k, s.v) RETURNING merge_action, k",
              "SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00' > TIMESTAMPTZ '2023-01-01 00:00:00+00'"] {
        match c.prepare(q) {
            Ok(mut st) => {
                let mut rows = st.query([]).unwrap();
                let mut out = vec![];
                while let Some(r) = rows.next().unwrap() {
                    let n = r.as_ref().column_count();
                    let vals: Vec<String> = (0..n).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect();
                    out.push(vals.join("|"));
                }
                println!("OK {q}: {out:?}");
            }
            Err(e) => println!("ERR {q}: {e}"),
        }
    }
}
