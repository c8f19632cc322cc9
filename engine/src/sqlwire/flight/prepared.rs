//! Flight SQL prepared statements: `CreatePreparedStatement` plans the SQL once in the token's
//! session (the plan check applies) to tell the client the result and parameter schemas;
//! `DoPut` binds one row of parameter values; `GetFlightInfo` plans again in a fresh session,
//! binds the values and runs it within the limits. A statement belongs to the token that
//! created it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::scalar::ScalarValue;
use parking_lot::Mutex;
use tonic::Status;

/// How long an unused prepared statement is kept.
const IDLE_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub(super) struct Prepared {
    pub(super) token_id: String,
    pub(super) sql: String,
    pub(super) parameters: Vec<Option<DataType>>,
    pub(super) bound: Option<Vec<ScalarValue>>,
    used: Instant,
}

impl Prepared {
    pub(super) fn new(token_id: String, sql: String, parameters: Vec<Option<DataType>>) -> Self {
        Self {
            token_id,
            sql,
            parameters,
            bound: None,
            used: Instant::now(),
        }
    }
}

/// The prepared statements of every client, by handle.
#[derive(Default)]
pub(super) struct Statements(Mutex<HashMap<String, Prepared>>);

impl Statements {
    /// Keeps `prepared`; its new handle.
    pub(super) fn insert(&self, prepared: Prepared) -> String {
        let handle = hex::encode(rand::random::<[u8; 16]>());
        let mut statements = self.0.lock();
        statements.retain(|_, p| p.used.elapsed() < IDLE_TTL);
        statements.insert(handle.clone(), prepared);
        handle
    }

    /// The statement `handle` of `token_id` (another token's is "not found").
    pub(super) fn get(&self, handle: &[u8], token_id: &str) -> Result<Prepared, Status> {
        let mut statements = self.0.lock();
        match statements.get_mut(&String::from_utf8_lossy(handle).into_owned()) {
            Some(p) if p.token_id == token_id => {
                p.used = Instant::now();
                Ok(p.clone())
            }
            _ => Err(Status::not_found("no such prepared statement")),
        }
    }

    pub(super) fn bind(&self, handle: &[u8], values: Vec<ScalarValue>) {
        if let Some(p) = self
            .0
            .lock()
            .get_mut(&String::from_utf8_lossy(handle).into_owned())
        {
            p.bound = Some(values);
        }
    }

    pub(super) fn remove(&self, handle: &[u8], token_id: &str) {
        let handle = String::from_utf8_lossy(handle).into_owned();
        let mut statements = self.0.lock();
        if statements
            .get(&handle)
            .is_some_and(|p| p.token_id == token_id)
        {
            statements.remove(&handle);
        }
    }
}

/// The parameter schema a client binds against: `$1`, `$2`, ... with the inferred types (text
/// where the query does not imply one).
pub(super) fn parameter_schema(parameters: &[Option<DataType>]) -> Schema {
    Schema::new(
        parameters
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Field::new(
                    format!("${}", i + 1),
                    t.clone().unwrap_or(DataType::Utf8),
                    true,
                )
            })
            .collect::<Vec<_>>(),
    )
}

/// The first row of the bound `batches` as the values of `parameters`, cast to the types the
/// query implies.
pub(super) fn values(
    batches: &[RecordBatch],
    parameters: &[Option<DataType>],
) -> Result<Vec<ScalarValue>, Status> {
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(Vec::new());
    };
    if batch.num_columns() < parameters.len() {
        return Err(Status::invalid_argument(format!(
            "the statement has {} parameters, {} were bound",
            parameters.len(),
            batch.num_columns()
        )));
    }
    batch
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let value = ScalarValue::try_from_array(column, 0)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            match parameters.get(i).cloned().flatten() {
                Some(target) if value.data_type() != target => {
                    value.cast_to(&target).map_err(|e| {
                        Status::invalid_argument(format!(
                            "parameter ${} is not a {target}: {e}",
                            i + 1
                        ))
                    })
                }
                _ => Ok(value),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int32Array, StringArray};

    use super::*;

    #[test]
    fn bound_values_take_the_inferred_types() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![7])),
                Arc::new(StringArray::from(vec!["shop"])),
            ],
        )
        .unwrap();
        let values = values(&[batch], &[Some(DataType::Int64), None]).unwrap();
        assert_eq!(
            values,
            vec![
                ScalarValue::Int64(Some(7)),
                ScalarValue::Utf8(Some("shop".to_owned()))
            ]
        );
        let statements = Statements::default();
        let handle = statements.insert(Prepared::new("t1".into(), "SELECT 1".into(), vec![]));
        assert!(statements.get(handle.as_bytes(), "t2").is_err());
        assert!(statements.get(handle.as_bytes(), "t1").is_ok());
    }
}
