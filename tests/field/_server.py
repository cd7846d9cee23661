"""Run the web app with the field router in a subprocess: ``python _server.py DB_URL BLOB_DIR PORT SECRET``."""

from tuban.fieldapp.serve import main

if __name__ == "__main__":
    main()
