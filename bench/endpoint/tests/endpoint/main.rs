//! The endpoint in-process on a free port, driven by `aws-sdk-dynamodb` and `aws-sdk-s3` (and by raw HTTP
//! where the SDK cannot send what is being tested).

mod binary;
mod capacity;
mod faults;
mod s3;
mod support;
mod throttling;
mod validation;
mod writes;
