//! The allow-list of Python globals a checkpoint may name. Anything else is refused the
//! moment it is read.

use crate::model::checkpoint::tensor::DType;

/// Allow-listed globals. Anything not representable here is rejected when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensorV3,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    /// `torch.FloatStorage` etc.
    StorageType(DType),
    /// `torch.float32` etc.
    Dtype(DType),
    /// `torch.Tensor`, `torch.nn.parameter.Parameter` (only as a `_rebuild_from_type_v2` argument).
    TensorType(&'static str),
    TorchSize,
    TorchDevice,
    CodecsEncode,
    Set,
    FrozenSet,
}

impl Global {
    pub(super) fn path(self) -> (String, String) {
        let (m, n): (&str, String) = match self {
            Global::OrderedDict => ("collections", "OrderedDict".into()),
            Global::RebuildTensorV2 => ("torch._utils", "_rebuild_tensor_v2".into()),
            Global::RebuildTensorV3 => ("torch._utils", "_rebuild_tensor_v3".into()),
            Global::RebuildParameter => ("torch._utils", "_rebuild_parameter".into()),
            Global::RebuildParameterWithState => {
                ("torch._utils", "_rebuild_parameter_with_state".into())
            }
            Global::RebuildFromTypeV2 => ("torch._tensor", "_rebuild_from_type_v2".into()),
            Global::StorageType(d) => ("torch", storage_class_name(d).into()),
            Global::Dtype(d) => ("torch", d.name().into()),
            Global::TensorType(n) => ("torch", n.into()),
            Global::TorchSize => ("torch", "Size".into()),
            Global::TorchDevice => ("torch", "device".into()),
            Global::CodecsEncode => ("_codecs", "encode".into()),
            Global::Set => ("builtins", "set".into()),
            Global::FrozenSet => ("builtins", "frozenset".into()),
        };
        (m.to_string(), n)
    }
}

fn storage_class_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "FloatStorage",
        DType::F64 => "DoubleStorage",
        DType::F16 => "HalfStorage",
        DType::BF16 => "BFloat16Storage",
        DType::I64 => "LongStorage",
        DType::I32 => "IntStorage",
        DType::I16 => "ShortStorage",
        DType::I8 => "CharStorage",
        DType::U8 => "ByteStorage",
        DType::Bool => "BoolStorage",
        DType::C64 => "ComplexFloatStorage",
        DType::C128 => "ComplexDoubleStorage",
    }
}

pub(super) fn resolve_global(module: &str, name: &str) -> Option<Global> {
    // Python 2 names written by protocol-2 pickles from Python 3.
    let module = match module {
        "__builtin__" => "builtins",
        other => other,
    };
    let storage = |n: &str| -> Option<DType> {
        Some(match n {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" | "UntypedStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            "ComplexFloatStorage" => DType::C64,
            "ComplexDoubleStorage" => DType::C128,
            _ => return None,
        })
    };
    let dtype = |n: &str| -> Option<DType> {
        Some(match n {
            "float32" | "float" => DType::F32,
            "float64" | "double" => DType::F64,
            "float16" | "half" => DType::F16,
            "bfloat16" => DType::BF16,
            "int64" | "long" => DType::I64,
            "int32" | "int" => DType::I32,
            "int16" | "short" => DType::I16,
            "int8" => DType::I8,
            "uint8" => DType::U8,
            "bool" => DType::Bool,
            "complex64" | "cfloat" => DType::C64,
            "complex128" | "cdouble" => DType::C128,
            _ => return None,
        })
    };
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch", "Tensor") => Global::TensorType("Tensor"),
        ("torch.nn.parameter", "Parameter") => Global::TensorType("nn.parameter.Parameter"),
        ("torch", "Size") => Global::TorchSize,
        ("torch", "device") => Global::TorchDevice,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("builtins", "set") => Global::Set,
        ("builtins", "frozenset") => Global::FrozenSet,
        ("torch" | "torch.cuda" | "torch.storage", n) if storage(n).is_some() => {
            Global::StorageType(storage(n)?)
        }
        ("torch", n) if dtype(n).is_some() => Global::Dtype(dtype(n)?),
        _ => return None,
    })
}
