"""Pictures of an archive and of runs (issue 27): `recombee-cli report` and `validate --report
FILE.html` draw reports, or a state file's run history, as one self-contained HTML page.

`runs` reads what is drawn (reports, a state's runs) and adds it up; `figures` draws the charts
with plotly (the `pictures` extra, imported only when a page is drawn); `page` puts them in one
HTML page that opens offline."""
