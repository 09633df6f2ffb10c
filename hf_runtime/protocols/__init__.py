"""Wire protocols. Each module depends only on hf_runtime.model/types/errors."""
