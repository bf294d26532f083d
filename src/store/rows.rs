//! Rows for multi-row statements, held column by column.
//!
//! PostgreSQL gets each column as one array parameter and reads the rows
//! back with `UNNEST`: a statement's text — so its prepared statement and
//! its plan — is the same for one row or two thousand, with a dozen
//! parameters instead of thousands to parse, bind and plan. (Built as
//! `VALUES` lists, nearly every write was a new statement to PostgreSQL: an
//! extra round trip to prepare it, and planning proportional to its rows.)
//! SQLite runs in process, where a statement costs no round trip: it gets
//! `VALUES` with a parameter per value.
//!
//! Either way the rows read as a FROM item `v` with columns `column1`,
//! `column2`, … in the order they were added, and rows come out in the
//! order they went in (deliveries are numbered in that order). Lists of ids
//! are `= ANY(array)` on PostgreSQL, `IN (…)` on SQLite.

use std::borrow::Cow;

use sqlx::{Postgres, QueryBuilder, Sqlite};

/// A column's values, borrowed where the caller has them: they are encoded
/// into the statement's arguments at once (`push_rows`), so a row's text
/// need not be copied into a `String` of its own first.
enum Column<'a> {
    Int(Vec<i64>),
    OptInt(Vec<Option<i64>>),
    Text(Vec<Cow<'a, str>>),
    OptText(Vec<Option<Cow<'a, str>>>),
    Bytes(Vec<&'a [u8]>),
    OptBytes(Vec<Option<Vec<u8>>>),
}

/// The names of the FROM item's columns, in order: written out, since a
/// statement is built for every group of publishes and formatting them was
/// a few percent of the server's instructions (callgrind).
const COLUMN_NAMES: [&str; 24] = [
    "column1", "column2", "column3", "column4", "column5", "column6", "column7", "column8",
    "column9", "column10", "column11", "column12", "column13", "column14", "column15", "column16",
    "column17", "column18", "column19", "column20", "column21", "column22", "column23", "column24",
];

impl Column<'_> {
    fn len(&self) -> usize {
        match self {
            Column::Int(v) => v.len(),
            Column::OptInt(v) => v.len(),
            Column::Text(v) => v.len(),
            Column::OptText(v) => v.len(),
            Column::Bytes(v) => v.len(),
            Column::OptBytes(v) => v.len(),
        }
    }

    fn pg_array(&self) -> &'static str {
        match self {
            Column::Int(_) | Column::OptInt(_) => "::int8[]",
            Column::Text(_) | Column::OptText(_) => "::text[]",
            Column::Bytes(_) | Column::OptBytes(_) => "::bytea[]",
        }
    }
}

/// Rows of one statement, built a column at a time:
/// `Rows::new(n).int(…).text(…)`, each column given as n values (at most
/// 24 columns).
pub struct Rows<'a> {
    len: usize,
    columns: Vec<Column<'a>>,
}

impl<'a> Rows<'a> {
    pub fn new(len: usize) -> Self {
        Rows {
            len,
            columns: Vec::with_capacity(8),
        }
    }

    fn with(mut self, column: Column<'a>) -> Self {
        assert_eq!(column.len(), self.len, "every column has a value per row");
        assert!(
            self.columns.len() < COLUMN_NAMES.len(),
            "at most {} columns",
            COLUMN_NAMES.len()
        );
        self.columns.push(column);
        self
    }

    pub fn int(self, values: impl IntoIterator<Item = i64>) -> Self {
        self.with(Column::Int(values.into_iter().collect()))
    }

    pub fn opt_int(self, values: impl IntoIterator<Item = Option<i64>>) -> Self {
        self.with(Column::OptInt(values.into_iter().collect()))
    }

    pub fn text<S: Into<Cow<'a, str>>>(self, values: impl IntoIterator<Item = S>) -> Self {
        self.with(Column::Text(values.into_iter().map(Into::into).collect()))
    }

    pub fn opt_text<S: Into<Cow<'a, str>>>(
        self,
        values: impl IntoIterator<Item = Option<S>>,
    ) -> Self {
        self.with(Column::OptText(
            values.into_iter().map(|v| v.map(Into::into)).collect(),
        ))
    }

    pub fn bytes(self, values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        self.with(Column::Bytes(values.into_iter().collect()))
    }

    pub fn opt_bytes(self, values: impl IntoIterator<Item = Option<Vec<u8>>>) -> Self {
        self.with(Column::OptBytes(values.into_iter().collect()))
    }
}

/// How a backend puts [`Rows`] into a statement.
pub trait PushRows: sqlx::Database {
    /// At most this many rows per statement, for rows of `columns` values.
    fn rows_per_statement(columns: usize) -> usize;

    /// Appends the rows as a FROM item `v`. `rows` must not be empty.
    fn push_rows(q: &mut QueryBuilder<Self>, rows: Rows<'_>);

    /// Appends a test that the expression before it is one of `ids`
    /// (which must not be empty).
    fn push_in_ids(q: &mut QueryBuilder<Self>, ids: &[i64]);
}

impl PushRows for Postgres {
    fn rows_per_statement(_columns: usize) -> usize {
        // Arrays: one parameter per column whatever the rows. The cap keeps
        // each statement under a second (counting tallies at start writes
        // hundreds of thousands of rows at a time; sqlx warns about slow
        // statements) and is above what a publishing group writes.
        50_000
    }

    fn push_rows(q: &mut QueryBuilder<Self>, rows: Rows<'_>) {
        let columns = rows.columns.len();
        q.push("UNNEST(");
        let mut list = q.separated(", ");
        for column in rows.columns {
            let cast = column.pg_array();
            match column {
                Column::Int(v) => list.push_bind(v),
                Column::OptInt(v) => list.push_bind(v),
                Column::Text(v) => list.push_bind(v),
                Column::OptText(v) => list.push_bind(v),
                Column::Bytes(v) => list.push_bind(v),
                Column::OptBytes(v) => list.push_bind(v),
            };
            list.push_unseparated(cast);
        }
        // A function scan alone in FROM returns the arrays' rows in order.
        q.push(") AS v (");
        q.push(COLUMN_NAMES[..columns].join(", "));
        q.push(")");
    }

    fn push_in_ids(q: &mut QueryBuilder<Self>, ids: &[i64]) {
        // An index condition however stale the table's statistics: a join
        // with UNNEST right after a bulk load was planned as a full scan.
        q.push(" = ANY(");
        q.push_bind(ids.to_vec());
        q.push("::int8[])");
    }
}

impl PushRows for Sqlite {
    fn rows_per_statement(columns: usize) -> usize {
        // SQLite's limit on parameters per statement is 32,766; well under.
        (8_000 / columns.max(1)).max(1)
    }

    fn push_rows(q: &mut QueryBuilder<Self>, rows: Rows<'_>) {
        assert!(rows.len > 0, "VALUES needs a row");
        q.push("(VALUES ");
        for i in 0..rows.len {
            if i > 0 {
                q.push(", ");
            }
            let mut row = q.separated(", ");
            row.push_unseparated("(");
            for column in &rows.columns {
                match column {
                    Column::Int(v) => row.push_bind(v[i]),
                    Column::OptInt(v) => row.push_bind(v[i]),
                    Column::Text(v) => row.push_bind(v[i].as_ref()),
                    Column::OptText(v) => row.push_bind(v[i].as_deref()),
                    Column::Bytes(v) => row.push_bind(v[i]),
                    Column::OptBytes(v) => row.push_bind(v[i].as_deref()),
                };
            }
            row.push_unseparated(")");
        }
        q.push(") AS v");
    }

    fn push_in_ids(q: &mut QueryBuilder<Self>, ids: &[i64]) {
        assert!(!ids.is_empty(), "IN needs an id");
        q.push(" IN (");
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        list.push_unseparated(")");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYTES: [u8; 256] = {
        let mut all = [0; 256];
        let mut i = 0;
        while i < 256 {
            all[i] = i as u8;
            i += 1;
        }
        all
    };

    fn rows(n: usize) -> Rows<'static> {
        Rows::new(n)
            .int(0..n as i64)
            .opt_text((0..n).map(|i| (i % 2 == 0).then(|| format!("office {i}"))))
            .bytes((0..n).map(|i| &BYTES[i % 256..=i % 256]))
    }

    #[test]
    fn postgres_statements_are_the_same_text_whatever_the_rows() {
        let text = |n| {
            let mut q = QueryBuilder::<Postgres>::new("SELECT * FROM ");
            Postgres::push_rows(&mut q, rows(n));
            q.push(" WHERE v.column1");
            Postgres::push_in_ids(&mut q, &vec![7; n]);
            q.sql().as_str().to_string()
        };
        assert_eq!(text(1), text(2_000));
        assert_eq!(
            text(1),
            "SELECT * FROM UNNEST($1::int8[], $2::text[], $3::bytea[]) \
             AS v (column1, column2, column3) WHERE v.column1 = ANY($4::int8[])"
        );
    }

    #[test]
    fn sqlite_binds_every_value_in_row_order() {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM ");
        Sqlite::push_rows(&mut q, rows(2));
        q.push(" WHERE v.column1");
        Sqlite::push_in_ids(&mut q, &[1, 2]);
        assert_eq!(
            q.sql().as_str(),
            "SELECT * FROM (VALUES (?, ?, ?), (?, ?, ?)) AS v WHERE v.column1 IN (?, ?)"
        );
    }

    #[test]
    #[should_panic(expected = "every column has a value per row")]
    fn a_short_column_is_a_bug() {
        let _ = Rows::new(2).int([1]);
    }
}
