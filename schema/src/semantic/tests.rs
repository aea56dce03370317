//! Tests for each rule of reference §3, through the whole loader so positions are checked too.
