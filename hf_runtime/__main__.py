from hf_runtime.cli import main

main()
