from lifecycle_assets.webhook.cli import main

main()
