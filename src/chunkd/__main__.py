from chunkd.cli.main import main

main()
