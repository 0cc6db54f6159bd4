"""Running the notebooks: JupyterLab with the emulator beside it (:mod:`.jupyterlab`) and its headless
twin, the tour (:mod:`.tour`)."""
