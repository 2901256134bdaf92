//! Foreign frames to the event schema: the engine's stages take exactly that schema.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt8Type,
};
use arrow_array::{
    new_null_array, ArrayRef, DictionaryArray, RecordBatch, StringViewArray, UInt8Array,
};
use arrow_schema::DataType;
use pyo3::exceptions::PyTypeError;
use pyo3::PyResult;

use crate::schema::{self, LEVELS};

/// Rebuilds `batch` with the event schema: missing columns become nulls, strings become
/// `Utf8View`, levels become the `UInt8` dictionary. Columns of other types are refused.
pub fn conform(batch: &RecordBatch) -> PyResult<RecordBatch> {
    let target = schema::event_schema();
    let rows = batch.num_rows();
    let mut columns = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let column = match batch.column_by_name(field.name()) {
            None if field.name() == schema::SAMPLE_RATE => {
                Arc::new(arrow_array::Float64Array::from(vec![1.0; rows]))
            }
            None if !field.is_nullable() => {
                let name = field.name();
                return Err(PyTypeError::new_err(format!(
                    "the frame has no {name:?} column"
                )));
            }
            None => new_null_array(field.data_type(), rows),
            Some(c) if c.data_type() == field.data_type() => c.clone(),
            Some(c) if field.name() == schema::LEVEL => level_codes(c)?,
            Some(c) if *field.data_type() == DataType::Utf8View => to_string_view(c, field.name())?,
            Some(c) => return Err(type_error(field.name(), c.data_type(), field.data_type())),
        };
        columns.push(column);
    }
    RecordBatch::try_new(target, columns).map_err(|e| PyTypeError::new_err(e.to_string()))
}

fn type_error(name: &str, found: &DataType, wanted: &DataType) -> pyo3::PyErr {
    PyTypeError::new_err(format!(
        "column {name:?} has type {found}, expected {wanted}"
    ))
}

fn to_string_view(column: &ArrayRef, name: &str) -> PyResult<ArrayRef> {
    let array: StringViewArray = match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => column.as_string::<i64>().iter().collect(),
        DataType::Utf8View => return Ok(column.clone()),
        DataType::Null => return Ok(new_null_array(&DataType::Utf8View, column.len())),
        other => return Err(type_error(name, other, &DataType::Utf8View)),
    };
    Ok(Arc::new(array))
}

/// Level names (plain strings, or a dictionary of any key width) to level codes.
fn level_codes(column: &ArrayRef) -> PyResult<ArrayRef> {
    let names: Vec<Option<String>> = match column.data_type() {
        DataType::Dictionary(key, _) => {
            let values = dictionary_values(column, key)?;
            values.into_iter().collect()
        }
        DataType::Null => vec![None; column.len()],
        _ => {
            let strings = to_string_view(column, schema::LEVEL)?;
            strings
                .as_string_view()
                .iter()
                .map(|v| v.map(str::to_owned))
                .collect()
        }
    };
    let codes: UInt8Array = names
        .iter()
        .map(|n| {
            n.as_deref()
                .and_then(|n| LEVELS.iter().position(|l| *l == n))
                .map(|p| p as u8)
        })
        .collect();
    let values = Arc::new(StringViewArray::from_iter_values(LEVELS));
    let dict = DictionaryArray::<UInt8Type>::try_new(codes, values)
        .map_err(|e| PyTypeError::new_err(e.to_string()))?;
    Ok(Arc::new(dict))
}

fn dictionary_values(column: &ArrayRef, key: &DataType) -> PyResult<Vec<Option<String>>> {
    macro_rules! lookup {
        ($t:ty) => {{
            let dict = column.as_dictionary::<$t>();
            let values = to_string_view(dict.values(), schema::LEVEL)?;
            let values = values.as_string_view();
            dict.keys()
                .iter()
                .map(|k| k.map(|k| values.value(k as usize).to_owned()))
                .collect()
        }};
    }
    Ok(match key {
        DataType::UInt8 => lookup!(UInt8Type),
        DataType::UInt16 => lookup!(UInt16Type),
        DataType::UInt32 => lookup!(UInt32Type),
        DataType::Int8 => lookup!(Int8Type),
        DataType::Int16 => lookup!(Int16Type),
        DataType::Int32 => lookup!(Int32Type),
        DataType::Int64 => lookup!(Int64Type),
        other => return Err(type_error(schema::LEVEL, other, &schema::level_type())),
    })
}
